"""Direct-loop float64 reference for the soft Dice loss (tinyseg.functional.dice_loss).

One Python loop over every pixel of the batch, the softmax of each pixel
written out with math.exp, and the per-class sums kept in plain lists:
slow, and easy to check against the formula in the docstring of dice.py.
"""

from __future__ import annotations

import math

import numpy as np


def pixels(logits, target):
    """(scores of one pixel: C floats, its label) for every pixel of (N, C[, H, W]) logits."""
    logits = np.asarray(logits, dtype=np.float64)
    target = np.asarray(target)
    for n in range(logits.shape[0]):
        for position in np.ndindex(*logits.shape[2:]):
            scores = [float(logits[(n, c) + position]) for c in range(logits.shape[1])]
            yield scores, int(target[(n,) + position])


def dice_loss(logits, target, weight=None, ignore_index=-100, smooth=1.0, reduction="mean"):
    """sum / mean over classes of w_c (1 - (2 I_c + s) / (P_c + G_c + s)), or the (C,) vector."""
    classes = np.shape(logits)[1]
    intersection, predicted, labelled = [0.0] * classes, [0.0] * classes, [0.0] * classes
    for scores, label in pixels(logits, target):
        if label == ignore_index:
            continue
        top = max(scores)
        exps = [math.exp(v - top) for v in scores]
        for c in range(classes):
            p = exps[c] / sum(exps)
            predicted[c] += p
            if label == c:
                intersection[c] += p
                labelled[c] += 1.0
    weights = [1.0] * classes if weight is None else [float(w) for w in weight]
    losses = []
    for c in range(classes):
        denominator = predicted[c] + labelled[c] + smooth
        dice = 1.0 if denominator == 0 else (2 * intersection[c] + smooth) / denominator
        losses.append(weights[c] * (1.0 - dice))
    if reduction == "none":
        return np.array(losses)
    if reduction == "sum":
        return np.float64(sum(losses))
    return np.float64(sum(losses) / sum(weights))
