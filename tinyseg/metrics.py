"""How good is a segmentation? Scores from one confusion matrix.

The confusion matrix M counts pixels by (true class, predicted class):

                      predicted
                   bg   disc  square
    true   bg     [ 90     2      0 ]      M[t, p] = pixels of class t
           disc   [  4    20      1 ]                predicted as p
           square [  0     3     10 ]

Every score is read off M. For class c write TP = M[c, c] (right),
FN = row c minus TP (class c pixels missed), FP = column c minus TP
(pixels wrongly called c):

    pixel accuracy  = trace(M) / sum(M)          share of pixels right
    accuracy of c   = TP / (TP + FN)             share of class c found
    IoU of c        = TP / (TP + FP + FN)        overlap / union of the two regions
    dice of c       = 2 TP / (2 TP + FP + FN)    (F1 score; always >= IoU)

and the "mean" scores average the per-class ones, so a small class counts
as much as the background. Pixel accuracy alone would hide a model that
never finds the small class: 90% of the pixels above are background.

One matrix for the whole dataset. The matrix sums the counts of every
batch, and the scores are computed once at the end. That is not the same as
averaging per-image IoUs, which would let a tiny shape in one image weigh as
much as the whole of another.

Absent classes. A class that appears neither in the truth nor in the
prediction has 0 / 0 for IoU and dice: there was nothing to find and
nothing was claimed. It gets NaN and is LEFT OUT of the mean rather than
counted as 0 (or 1). A class that is absent from the truth but predicted
somewhere has IoU 0, and does count.

Pixels whose true label is `ignore_index` (255) are not counted at all.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyseg.backend import to_numpy


class ConfusionMatrix:
    """Accumulates a (num_classes, num_classes) int64 confusion matrix over many batches.

    `matrix[t, p]` counts the pixels of true class t predicted as class p.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Forget every pixel counted so far."""
        self.matrix[:] = 0

    def update(self, pred, target) -> None:
        """Count one batch: pred and target are integer arrays of the same shape, e.g. (N, H, W).

        pred holds predicted classes 0 .. C-1 (e.g. logits.argmax(axis=1));
        target holds true classes 0 .. C-1, or ignore_index.
        NumPy or CuPy arrays; the counting happens on the host.
        """
        pred, target = to_numpy(pred), to_numpy(target)
        if pred.shape != target.shape:
            raise ValueError(f"ConfusionMatrix.update: pred has shape {pred.shape} but target has shape "
                             f"{target.shape}; they must match")
        keep = target != self.ignore_index
        pred, target = pred[keep].astype(np.int64), target[keep].astype(np.int64)    # (P,) each
        self.check_range("pred", pred)
        self.check_range("target", target)
        # Pair (t, p) gets the single number t * C + p; counting those numbers fills M row by row.
        counts = np.bincount(target * self.num_classes + pred, minlength=self.num_classes ** 2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def check_range(self, name: str, labels: np.ndarray) -> None:
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ValueError(f"ConfusionMatrix.update: {name} holds the class {int(labels[bad][0])}, "
                             f"expected 0..{self.num_classes - 1}")

    def compute(self) -> dict:
        """The scores of everything counted so far; see scores_from_matrix."""
        return scores_from_matrix(self.matrix)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.matrix.sum())})"


def scores_from_matrix(matrix: np.ndarray) -> dict:
    """Every score of a confusion matrix M[true, predicted].

    Returns a dict:
        "pixel_accuracy"  float          trace / total
        "mean_accuracy"   float          mean of class_accuracy, NaN classes left out
        "mean_iou"        float          mean of class_iou, NaN classes left out
        "mean_dice"       float          mean of class_dice, NaN classes left out
        "class_accuracy"  float64 (C,)   NaN for a class absent from the truth
        "class_iou"       float64 (C,)   NaN for a class absent from truth and prediction
        "class_dice"      float64 (C,)   likewise
        "confusion"       int64 (C, C)   a copy of M
    The floats are NaN when no pixel was counted.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    right = np.diag(matrix).astype(np.float64)           # TP per class
    truth = matrix.sum(axis=1).astype(np.float64)        # TP + FN: pixels of class c
    claimed = matrix.sum(axis=0).astype(np.float64)      # TP + FP: pixels predicted as c
    union = truth + claimed - right                      # TP + FP + FN
    class_accuracy = safe_divide(right, truth)
    class_iou = safe_divide(right, union)
    class_dice = safe_divide(2 * right, truth + claimed)
    return {
        "pixel_accuracy": float(safe_divide(right.sum(), truth.sum())),
        "mean_accuracy": mean_of_present(class_accuracy),
        "mean_iou": mean_of_present(class_iou),
        "mean_dice": mean_of_present(class_dice),
        "class_accuracy": class_accuracy,
        "class_iou": class_iou,
        "class_dice": class_dice,
        "confusion": matrix.copy(),
    }


def safe_divide(numerator, denominator):
    """numerator / denominator, NaN where the denominator is 0 (instead of a warning)."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def mean_of_present(values: np.ndarray) -> float:
    """The mean of the non-NaN values; NaN if there are none."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def format_table(metrics: dict, class_names: Sequence[str] | None = None) -> str:
    """A fixed-width text table of per-class IoU, dice and accuracy, then the summary lines.

        class            IoU    dice     acc
        background     0.981   0.990   0.993
        disc           0.873   0.932   0.910
        square             -       -       -      <- absent: no score
        ---------------------------------
        mean IoU       0.927
        ...
    """
    count = len(metrics["class_iou"])
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"format_table: {len(names)} class names for {count} classes")
    width = max(12, *(len(name) for name in names)) + 2
    lines = [f"{'class':<{width}}{'IoU':>8}{'dice':>8}{'acc':>8}"]
    for i, name in enumerate(names):
        scores = (metrics["class_iou"][i], metrics["class_dice"][i], metrics["class_accuracy"][i])
        lines.append(f"{name:<{width}}" + "".join(f"{number(x):>8}" for x in scores))
    lines.append("-" * (width + 24))
    for label, key in (("mean IoU", "mean_iou"), ("mean dice", "mean_dice"),
                       ("mean accuracy", "mean_accuracy"), ("pixel accuracy", "pixel_accuracy")):
        lines.append(f"{label:<{width}}{number(metrics[key]):>8}")
    return "\n".join(lines)


def number(x: float) -> str:
    """0.1234 -> '0.123'; NaN (no score) -> '-'."""
    return "-" if np.isnan(x) else f"{x:.3f}"


def row_normalized(matrix: np.ndarray) -> np.ndarray:
    """M[t, p] / (pixels of true class t): each row sums to 1; a class absent from the truth is NaN.

    Row t says where the pixels of class t went: its diagonal entry is the
    accuracy of class t, the rest which classes took its pixels.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    return safe_divide(matrix, matrix.sum(axis=1, keepdims=True))


def format_confusion(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> str:
    """The confusion matrix as two text tables: pixel counts, then row-normalised shares.

        confusion matrix (rows: true class, columns: predicted class), pixels
                        background        disc
        background           90012          30
        disc                    41        3912
        row-normalised (each row sums to 1; the diagonal is each class's accuracy)
                        background        disc
        background           1.000       0.000
        disc                 0.010       0.990
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    count = len(matrix)
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"format_confusion: {len(names)} class names for {count} classes")
    first = max(12, *(len(name) for name in names)) + 2
    cell = max(8, len(str(int(matrix.max(initial=0)))), *(len(name) for name in names)) + 2
    header = " " * first + "".join(f"{name:>{cell}}" for name in names)
    lines = ["confusion matrix (rows: true class, columns: predicted class), pixels", header]
    lines += [f"{name:<{first}}" + "".join(f"{int(v):>{cell}}" for v in row) for name, row in zip(names, matrix)]
    lines += ["row-normalised (each row sums to 1; the diagonal is each class's accuracy)", header]
    lines += [f"{name:<{first}}" + "".join(f"{number(v):>{cell}}" for v in row)
              for name, row in zip(names, row_normalized(matrix))]
    return "\n".join(lines)
