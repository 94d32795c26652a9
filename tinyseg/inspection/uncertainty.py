"""Uncertainty: how sure the model is at each pixel, read off its softmax probabilities.

A segmentation network gives every pixel K probabilities, one per class,
that sum to 1 (Predictor.probabilities). The label is the largest; how much
larger it is says how sure the model was. One number per pixel sums it up,
the entropy of the K probabilities (natural log):

    H = -sum over classes of p * log(p)            (0 * log 0 counts as 0)

    p = (1, 0, 0, 0)            H = 0                  certain
    p = (0.5, 0.5, 0, 0)        H = log 2 = 0.69       torn between two classes
    p = (1/4, 1/4, 1/4, 1/4)    H = log 4 = 1.39       no idea: the largest H for K = 4

A trained model is sure inside a shape and on the background, and hesitates
where one class meets another: a pixel on the edge of a disc is half disc,
half background, and its window sees both. `entropy_by_region` measures
exactly that, on the model's own labels: the mean entropy of the pixels on a
class boundary against the mean of all the others.
"""

from __future__ import annotations

import numpy as np


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """(H, W) entropy -sum p log p (natural log) of (K, H, W) probabilities; between 0 and log K."""
    total = np.zeros(np.shape(probabilities)[1:])                       # (H, W), float64
    for p in probabilities:                                             # one class at a time: (H, W)
        p = np.asarray(p, dtype=np.float64)
        total -= p * np.log(np.where(p > 0, p, 1.0))                    # log 1 = 0 where p = 0
    return np.maximum(total, 0.0)                                       # -0.0 -> 0


def class_boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels with a 4-neighbour (up, down, left, right) of another label.

        labels          boundaries
        0 0 1 1         . x x .
        0 0 1 1         . x x .         both sides of an edge are marked,
        0 0 0 0         . . x x         so a boundary is two pixels wide
    """
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    across_rows = labels[1:, :] != labels[:-1, :]                       # (H-1, W): row i vs i+1
    across_cols = labels[:, 1:] != labels[:, :-1]                       # (H, W-1): col j vs j+1
    edge[1:, :] |= across_rows
    edge[:-1, :] |= across_rows
    edge[:, 1:] |= across_cols
    edge[:, :-1] |= across_cols
    return edge


def entropy_by_region(entropies: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean entropy on class boundaries, mean entropy elsewhere); NaN for a region with no pixel."""
    edge = class_boundaries(labels)
    boundary = float(entropies[edge].mean()) if edge.any() else float("nan")
    interior = float(entropies[~edge].mean()) if (~edge).any() else float("nan")
    return boundary, interior
