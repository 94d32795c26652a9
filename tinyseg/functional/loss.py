"""Cross-entropy for classification and for segmentation (one label per pixel).

For one pixel with class scores x (C of them) and true class t:

    loss = -log softmax(x)_t = log sum_j e^{x_j} - x_t

computed through the log-sum-exp trick of log_softmax (activation.py), so
scores of 1e4 give a finite loss. Its gradient is beautifully simple:
softmax(x) - onehot(t).

Two forms. cross_entropy_textbook is the formula as Tensor operations
(log_softmax, the true class picked by a one-hot mask, the weighted mean):
read it first, autograd differentiates it. cross_entropy is the same numbers
fused into one operator with its backward written out: one buffer goes
x - max -> exp -> softmax in place, the loss reads the shifted score of the
true class only, and backward scales the kept softmax once and subtracts at
the true classes only (no one-hot array), because passes over memory, not
arithmetic, set its pace (measured: benchmarks/results/kernels.md); its passes
run sample by sample on the cores (sample_threads.over_samples).
tests/test_textbook_forms.py proves the two equal in value and gradient.

Segmentation logits are (N, C, H, W) and targets (N, H, W): the same formula
at every pixel. Pixels whose target is `ignore_index` (e.g. unlabelled
borders) contribute nothing. With class weights w the mean is weighted, as
PyTorch defines it:

    mean loss = sum_i w[t_i] * loss_i / sum_i w[t_i]     over pixels i not ignored
"""

from __future__ import annotations

import math

import numpy as np

from tinyseg import backend
from tinyseg.functional.activation import log_softmax
from tinyseg.functional.sample_threads import over_samples
from tinyseg.functional.validate import check_tensor
from tinyseg.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def cross_entropy_textbook(logits: Tensor, target, weight=None, ignore_index: int = -100,
                           reduction: str = "mean") -> Tensor:
    """cross_entropy below, as the formula reads: Tensor operations only, so autograd differentiates it.

    The same arguments and numbers as cross_entropy; its graph keeps log p and
    a few more (N, C, H, W) arrays for backward, where the fused form keeps one.
    """
    op = "cross_entropy"
    check_loss_input(op, logits, reduction)
    target = check_target(op, logits, target, ignore_index)
    onehot, pixel_weight = onehot_and_pixel_weights(logits, target, check_weight(op, logits, weight),
                                                    ignore_index)
    log_p = log_softmax(logits, dim=1)                              # (N, C, H, W)
    log_pt = (log_p * onehot).sum(axis=1)                           # (N, H, W): log p of the true class
    losses = -log_pt * pixel_weight                                 # (N, H, W): w[t], 0 where ignored
    return reduce_pixel_losses(losses, pixel_weight.sum(), reduction)


def onehot_and_pixel_weights(logits: Tensor, target, class_weight, ignore_index: int):
    """Two constant arrays for the textbook losses: the one-hot target (N, C, H, W), an ignored
    pixel's pointing at class 0, and each pixel's weight (N, H, W): w[t] (1 without class
    weights), 0 where the target is ignore_index, so that ignored pixels count for nothing."""
    xp = logits.xp
    valid = target != ignore_index                                  # (N, H, W) bool
    safe_target = xp.where(valid, target, 0)                        # ignored -> any real class
    classes = xp.arange(logits.shape[1]).reshape((1, -1) + (1,) * (logits.ndim - 2))
    onehot = (safe_target[:, None] == classes).astype(logits.dtype)
    return onehot, pixel_weights(valid, safe_target, class_weight, logits.dtype)


def pixel_weights(valid, safe_target, class_weight, dtype):
    """Each pixel's weight (N, H, W): w[t] (1 without class weights), 0 where valid is False.

    valid (N, H, W) bool: the target is not ignore_index; safe_target: the
    target with ignored pixels pointing at any real class.
    """
    pixel_weight = valid.astype(dtype)                              # 0 for ignored pixels
    if class_weight is not None:
        pixel_weight = pixel_weight * class_weight[safe_target]
    return pixel_weight


def mean_divisor(target, weight=None, ignore_index: int = -100, dtype=np.float32):
    """sum_i w[t_i] over the pixels whose target is not ignore_index (1 each without weights).

    What reduction="mean" divides the summed losses by, in cross_entropy and
    focal_loss alike; a (0-d) array of `dtype`. Over a share of a batch's
    samples, summed loss / the whole batch's divisor is the share's part of the
    batch's mean (nn.PixelLoss.part_of_mean).
    """
    xp = backend.get_array_module(target)
    valid = target != ignore_index                                  # (N, H, W) bool
    class_weight = weight.data if isinstance(weight, Tensor) else weight
    return pixel_weights(valid, xp.where(valid, target, 0), class_weight, dtype).sum()


def cross_entropy(logits: Tensor, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of (N, C) or (N, C, H, W) logits against integer targets.

    target: (N,) or (N, H, W) integer class indices in [0, C), or ignore_index.
    weight: optional (C,) class weights. reduction: "mean", "sum" or "none".
    Saved for backward: the softmax p (N, C, H, W) (the one buffer, not the
    logits), the true classes' flat positions (N, H*W) and the pixel weights (N, H, W).
    """
    op = "cross_entropy"
    check_loss_input(op, logits, reduction)
    xp = logits.xp
    n_classes = logits.shape[1]
    target = check_target(op, logits, target, ignore_index)
    class_weight = check_weight(op, logits, weight)

    valid = target != ignore_index                                  # (N, H, W) bool
    all_valid = bool(valid.all())
    safe_target = target if all_valid else xp.where(valid, target, 0)   # ignored -> any real class
    positions = true_class_positions(safe_target, n_classes)        # (N, H*W) into flat (N, C, H, W)
    p = xp.empty_like(logits.data)                                  # (N, C, H, W): the one buffer
    neg_logp = xp.empty(target.shape, dtype=logits.dtype)           # (N, H, W): -log p_t

    def softmax_share(start, stop):            # samples start..stop-1, in place in p, on the cores
        rows = p[start:stop]
        xp.subtract(logits.data[start:stop], logits.data[start:stop].max(axis=1, keepdims=True),
                    out=rows)                                       # shifted, <= 0
        picked = xp.take(p, positions[start:stop]).reshape(neg_logp[start:stop].shape)   # x_t - max
        xp.exp(rows, out=rows)
        total = rows.sum(axis=1, keepdims=True)                     # (n, 1, H, W)
        rows /= total                                               # softmax, kept for backward
        xp.subtract(xp.log(total[:, 0]), picked, out=neg_logp[start:stop])

    over_samples(softmax_share, p)
    pixel_weight = pixel_weights(valid, safe_target, class_weight, logits.dtype)   # (N, H, W)
    losses = neg_logp if class_weight is None and all_valid else neg_logp * pixel_weight   # (N, H, W)
    total_weight = pixel_weight.sum()
    out = reduce_pixel_losses(losses, total_weight, reduction)

    def backward(grad):                      # grad: () for mean/sum, (N, H, W) for none; keeps p
        if reduction == "mean":
            coefficient = pixel_weight * (grad / total_weight)      # (N, H, W)
        else:
            coefficient = pixel_weight * grad
        gx = xp.empty_like(p)                                       # (N, C, H, W)

        def share(start, stop):
            xp.multiply(p[start:stop], coefficient[start:stop, None], out=gx[start:stop])   # softmax part
            at = positions[start:stop]
            xp.put(gx, at, xp.take(gx, at) - coefficient[start:stop].reshape(at.shape))   # minus one-hot

        over_samples(share, gx)
        return (gx,)

    return Tensor.from_op(out, (logits,), backward, op, ignore_index=ignore_index,
                          reduction=reduction)


def true_class_positions(target, n_classes: int):
    """Where x[n, target[n, h, w], h, w] sits in the flattened (N, C, H, W) array.

    A C-contiguous array stores entry (n, c, h, w) at position
    (n * C + c) * S + s, with S = H * W pixels per map and s = h * W + w. For
    N = 1, C = 3, H = W = 2 and target [[2, 0], [1, 1]] (S = 4):

        pixel s         0   1   2   3
        class t         2   0   1   1
        t * S + s       8   1   6   7      (n = 0 adds nothing)

    so np.take(x, [[8, 1, 6, 7]]) reads the four true-class scores and np.put
    writes them back. target: (N, ...) integer classes in [0, C). Returns (N, S).
    """
    xp = backend.get_array_module(target)
    n, pixels = target.shape[0], math.prod(target.shape[1:])        # N, S
    positions = target.reshape(n, pixels) * pixels                  # c * S
    positions += xp.arange(n).reshape(n, 1) * (n_classes * pixels)  # + n * C * S
    positions += xp.arange(pixels)                                  # + s
    return positions


def reduce_pixel_losses(losses, total_weight, reduction: str):
    """Reduce per-pixel losses (an array, or a Tensor in the textbook forms): mean =
    sum(losses) / total_weight (the pixels' summed weights), sum, or none (the losses as they are)."""
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):        # all ignored: 0/0 = nan, as PyTorch
            return losses.sum() / total_weight
    if reduction == "sum":
        return losses.sum()
    return losses


def check_loss_input(op: str, logits: Tensor, reduction: str) -> None:
    """The checks every loss of (N, C) or (N, C, H, W) logits starts with."""
    check_tensor(logits, "input", op)
    if logits.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C) or (N, C, H, W), got shape {logits.shape}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_target(op: str, logits: Tensor, target, ignore_index: int):
    """The target as an integer array of shape (N, H, W) with labels in [0, C) or ignored."""
    return check_labels(op, logits.shape, logits.device, target, ignore_index)


def check_labels(op: str, logits_shape: tuple, device: str, target, ignore_index: int):
    """check_target for logits of `logits_shape` (N, C[, H, W]) on `device`, before they exist
    (data_parallel.py checks the whole batch's target before it cuts the batch)."""
    data = target.data if isinstance(target, Tensor) else target
    if not backend.is_array(data):
        data = np.asarray(data)
    logits_shape = tuple(logits_shape)
    expected = (logits_shape[0],) + logits_shape[2:]
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {data.dtype} "
                        f"(shape {tuple(data.shape)}); convert with .astype(int)")
    if tuple(data.shape) != expected:
        raise ValueError(f"{op}: target has shape {tuple(data.shape)}, expected {expected} "
                         f"for input of shape {logits_shape}")
    if backend.device_of(data) != device:
        raise ValueError(f"{op}: input is on {device} but target is on "
                         f"{backend.device_of(data)}")
    n_classes = logits_shape[1]
    if data.size == 0 or (int(data.min()) >= 0 and int(data.max()) < n_classes):
        return data.astype(np.int64, copy=False)                    # the common case: two passes
    bad = ((data < 0) | (data >= n_classes)) & (data != ignore_index)
    if bool(bad.any()):
        values = sorted(set(backend.to_numpy(data[bad]).tolist()))[:5]
        raise ValueError(f"{op}: target holds labels {values} outside [0, {n_classes}) for input "
                         f"of shape {logits_shape} (ignore_index is {ignore_index})")
    return data.astype(np.int64, copy=False)


def check_weight(op: str, logits: Tensor, weight):
    """Class weights as a (C,) array of the logits' dtype, or None."""
    if weight is None:
        return None
    data = weight.data if isinstance(weight, Tensor) else weight
    if not backend.is_array(data):
        data = np.asarray(data)
    n_classes = logits.shape[1]
    if tuple(data.shape) != (n_classes,):
        raise ValueError(f"{op}: weight has shape {tuple(data.shape)}, expected ({n_classes},) "
                         f"for input of shape {logits.shape}")
    if backend.device_of(data) != logits.device:
        raise ValueError(f"{op}: input is on {logits.device} but weight is on "
                         f"{backend.device_of(data)}")
    return data.astype(logits.dtype, copy=False)
