"""Class weights against imbalance: from the training masks' pixel counts, or typed by hand.

In segmentation the background often covers most pixels, so an unweighted
per-pixel loss is mostly about the background. A class weight w_c scales the
loss of every pixel of class c (cross_entropy's and dice_loss's `weight`).
With n_c the pixels of class c in the training masks (ignore left out),
f_c = n_c / sum_k n_k its frequency, and K the number of classes with n_c > 0:

    "median_frequency"    w_c = median_k(f_k) / f_c        (Eigen & Fergus, 2015)
    "inverse_frequency"   w_c = 1 / (K f_c)

Both give every class weight 1 when all classes are equally frequent. With
median frequency the class of median frequency gets weight 1, rarer classes
more, commoner ones less; the median and K run over the classes that occur.

    counts              median_frequency          inverse_frequency
    [900, 90, 10]       [0.1, 1.0, 9.0]           [0.37, 3.70, 33.3]

A class with no pixels at all gets weight 1.0 (neutral): there is nothing
to balance, so its cross-entropy term never appears, and its Dice term keeps
the plain weight. The caller should say that the class is missing.

`class_weights_for(option, dataset)` turns the `--class-weights` option
("auto", "1,2,5" or none) into weights; `format_class_weights` prints them
beside the class names.
"""

from __future__ import annotations

import math

import numpy as np

RULES = ("median_frequency", "inverse_frequency")


def class_weights_from_counts(counts, rule: str = "median_frequency") -> list:
    """One float weight per class from int pixel counts (C,), by `rule` (see the module docstring)."""
    counts = np.asarray(counts)
    if rule not in RULES:
        raise ValueError(f"class_weights_from_counts: rule must be one of {RULES}, got {rule!r}")
    if counts.ndim != 1 or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(f"class_weights_from_counts: counts must be (C,) non-negative integers, "
                         f"got {counts!r}")
    present = counts > 0
    if not present.any():
        raise ValueError(f"class_weights_from_counts: the masks hold no labelled pixel at all "
                         f"(counts {counts.tolist()})")
    frequency = counts / counts.sum()                                  # (C,): f_c
    weights = np.ones(len(counts))                                     # absent classes: 1.0
    if rule == "median_frequency":
        weights[present] = np.median(frequency[present]) / frequency[present]
    else:
        weights[present] = 1.0 / (present.sum() * frequency[present])
    return weights.tolist()


def parse_class_weights(text: str, num_classes: int) -> list:
    """'1,2,5' -> [1.0, 2.0, 5.0]: one positive finite number per class, else a ValueError.

    The option value "auto" is not parsed here: the caller computes the weights
    from the data (class_weights_from_counts) instead.
    """
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != num_classes:
        raise ValueError(f"--class-weights: expected {num_classes} comma-separated numbers "
                         f"(one per class) or 'auto', got {len(parts)} in {text!r}")
    weights = []
    for index, part in enumerate(parts):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--class-weights: {part!r} (class {index}) is not a number, in {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--class-weights: the weight of class {index} must be a positive "
                             f"number, got {part!r} in {text!r}")
        weights.append(value)
    return weights


def class_weights_for(option: str | None, dataset, rule: str = "median_frequency") -> list | None:
    """What `--class-weights OPTION` means for `dataset`: None, weights from its masks, or typed ones.

    None, "" or "none": no weights (None). "auto": class_weights_from_counts of
    dataset.class_pixel_counts() by `rule`. Otherwise: parse_class_weights.
    """
    if option is None or option in ("", "none"):
        return None
    if option == "auto":
        return class_weights_from_counts(dataset.class_pixel_counts(), rule)
    return parse_class_weights(option, dataset.num_classes)


def format_class_weights(class_names, weights, counts=None) -> str:
    """One line per class: name, weight (and pixel count, if given), for the training log."""
    lines = [f"{'class':<16} {'weight':>8}" + ("  pixels" if counts is not None else "")]
    for index, (name, weight) in enumerate(zip(class_names, weights)):
        line = f"{name:<16} {weight:8.4f}"
        if counts is not None:
            line += f"  {int(counts[index]):,}" + ("  (no pixels: weight 1)" if counts[index] == 0 else "")
        lines.append(line)
    return "\n".join(lines)
