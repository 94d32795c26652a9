"""Per-channel normalisation: measure the training images, then centre and scale every input.

A network learns fastest when its inputs have mean 0 and spread 1 in every
channel. Real pixel ranges are far from that: a photo's values sit in
[0, 1] with mean ~0.45, a 16-bit microscope image read as value / 65535
may sit in [0.013, 0.021]. So tinyseg measures, on the TRAINING images only,

    mean[c] = average of channel c over every pixel of every image
    std[c]  = its standard deviation

and feeds the model (x - mean[c]) / std[c]. The two vectors are stored in
the checkpoint, so that eval and predict apply exactly what training did.

Measuring without holding every image: each image contributes its pixel
count n, its channel means m and M2 = sum((x - m)**2); two such summaries
combine exactly (Chan, Golub and LeVeque's parallel variance):

    n  = n_a + n_b
    d  = m_b - m_a
    m  = m_a + d * n_b / n
    M2 = M2_a + M2_b + d**2 * n_a * n_b / n          std = sqrt(M2 / n)

This is exact (not an approximation) and, unlike sum(x**2)/n - mean**2,
does not lose the digits of a small spread around a large mean.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

MIN_STD = 1e-6      # a constant channel is divided by this, not by 0


def image_moments(image: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(pixel count n, mean float64 (C,), M2 float64 (C,)) of one (C, H, W) image."""
    pixels = image.reshape(image.shape[0], -1).astype(np.float64)             # (C, H*W)
    mean = pixels.mean(axis=1)
    m2 = ((pixels - mean[:, None]) ** 2).sum(axis=1)
    return pixels.shape[1], mean, m2


def combine_moments(moments: Iterable[tuple[int, np.ndarray, np.ndarray]]):
    """(mean float64 (C,), std float64 (C,)) of all the images the moments summarise."""
    count, mean, m2 = 0, None, None
    for n_b, mean_b, m2_b in moments:
        if mean is None:
            count, mean, m2 = n_b, mean_b.copy(), m2_b.copy()
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta ** 2 * (count * n_b / total)
        count = total
    if mean is None:
        raise ValueError("channel statistics of an empty dataset: there are no images to measure")
    return mean, np.sqrt(m2 / count)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """(images - mean) / std per channel; images (B, C, H, W) or (C, H, W), float32 out.

    mean, std: (C,) sequences. std is floored at MIN_STD so that a channel
    that is constant in the training images does not divide by zero.
    """
    images = np.asarray(images, dtype=np.float32)
    mean = np.asarray(mean, dtype=np.float32)
    std = np.maximum(np.asarray(std, dtype=np.float32), MIN_STD)
    channels = images.shape[-3] if images.ndim >= 3 else None
    if images.ndim not in (3, 4) or mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"normalize: images must be (B, C, H, W) or (C, H, W) with mean and std of "
                         f"shape (C,), got images {images.shape}, mean {mean.shape}, std {std.shape}")
    return (images - mean[:, None, None]) / std[:, None, None]


def normalized(images: np.ndarray, normalization: dict | None) -> np.ndarray:
    """images scaled by a checkpoint's {"mean": [...], "std": [...]} (normalize), or as they are if None."""
    if normalization is None:
        return np.asarray(images, dtype=np.float32)
    return normalize(images, normalization["mean"], normalization["std"])
