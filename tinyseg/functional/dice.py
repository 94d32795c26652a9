"""The soft Dice loss: one minus the overlap of predicted and true regions, per class.

The Dice coefficient of two sets A (predicted pixels of a class) and B (true
pixels of that class) is 2 |A n B| / (|A| + |B|): 1 when they coincide, 0 when
they do not touch. It is the F1 score of the class, the metric "dice" of the
metrics table. Counting pixels is not differentiable, so the *soft* Dice
replaces "pixel i is predicted as class c" by the probability p_ic = softmax(x_i)_c:

    g_ic = 1 if pixel i is labelled c, else 0          (one-hot target)
    I_c  = sum_i p_ic g_ic                             (soft intersection)
    P_c  = sum_i p_ic,   G_c = sum_i g_ic              (soft size of A, size of B)
    D_c  = P_c + G_c + s                               (denominator, s = smooth)
    dice_c = (2 I_c + s) / D_c,     loss_c = 1 - dice_c

The sums run over every pixel i of the WHOLE batch (all N images and all
H x W positions together), and only over pixels whose target is not
`ignore_index`: an ignored pixel adds nothing to I_c, P_c or G_c, so it gets
no gradient. (N, C) logits are the same with one "pixel" per row.

Reduction over classes, with class weights w_c (all 1 when weight is None):

    "mean"   sum_c w_c loss_c / sum_c w_c     (a scalar; the plain mean over C without weights)
    "sum"    sum_c w_c loss_c                 (a scalar)
    "none"   w_c loss_c                       (a (C,) vector, one entry per class)

Classes that are absent from the target. With s > 0 a class that is neither
labelled nor predicted (G_c = 0, P_c ~ 0) has dice_c ~ s / s = 1 and loss_c ~ 0:
nothing to learn, and it still counts in the mean as a perfect class. A class
absent from the target but predicted (P_c large) has dice_c = s / (P_c + s),
so the loss pushes its probabilities down. With s = 0 the only way to get
D_c = 0 is a batch with no pixel counted at all (every target ignored): that
class's loss is defined as 0 with no gradient instead of 0/0.

Two forms. dice_loss_textbook is the table above as Tensor operations
(softmax, masked sums, the ratio, the weighted mean) with autograd finding
the backward: read it first. dice_loss is one operator with the backward
written out below, which keeps p and the one-hot target and no intermediate
of the ratio. tests/test_textbook_forms.py proves the two equal in value and
gradient.

The backward, written out. Let a_c = d L / d loss_c (from the reduction:
grad * w_c / sum_k w_k for "mean", grad * w_c for "sum", grad_c * w_c for
"none"). By the quotient rule, for a counted pixel i,

    d dice_c / d p_ic = (2 g_ic D_c - (2 I_c + s)) / D_c^2 = (2 g_ic - dice_c) / D_c

so  q_ic = d L / d p_ic = a_c (dice_c - 2 g_ic) / D_c   (0 for ignored pixels),

and through the softmax (d p_ik / d x_ij = p_ik (delta_kj - p_ij)):

    d L / d x_ij = p_ij (q_ij - sum_k q_ik p_ik).

Compared with the usual definitions. segmentation_models_pytorch's multiclass
DiceLoss computes the same per-class soft Dice over the batch and the pixels,
but with smooth = 0, a small eps clamp on the denominator, and it
zeroes the loss of classes absent from the target (here: with s > 0
they are ~0 anyway, and a predicted-but-absent class IS penalised). MONAI's
DiceLoss computes Dice per image and per class (batch=False) with tiny
smoothing terms (1e-5) and averages those; here the batch is one pool of
pixels, which is less noisy when a class is missing from some images.
"""

from __future__ import annotations

import numbers

from tinyseg.functional.activation import log_softmax_array, softmax
from tinyseg.functional.loss import check_loss_input, check_target, check_weight, onehot_and_pixel_weights
from tinyseg.tensor import Tensor


def dice_loss_textbook(input: Tensor, target, weight=None, ignore_index: int = -100,
                       smooth: float = 1.0, reduction: str = "mean") -> Tensor:
    """dice_loss below, as the formulas read: Tensor operations only, so autograd differentiates it.

    The same arguments and numbers as dice_loss, except one corner: with
    smooth = 0 and every pixel ignored, D_c = 0 and this form gives 0/0 = nan
    where dice_loss defines the loss as 0.
    """
    op = "dice_loss"
    check_loss_input(op, input, reduction)
    check_smooth(op, smooth)
    target = check_target(op, input, target, ignore_index)
    class_weight = check_weight(op, input, weight)
    class_weight = input.xp.ones(input.shape[1], dtype=input.dtype) if class_weight is None else class_weight
    onehot, counted = onehot_and_pixel_weights(input, target, None, ignore_index)
    counted = counted[:, None]                                       # (N, 1, H, W): 1, or 0 if ignored
    onehot = onehot * counted                                        # (N, C, H, W): g, 0 if ignored
    pixel_axes = (0,) + tuple(range(2, input.ndim))                  # every axis but C
    counted_p = softmax(input, dim=1) * counted                      # (N, C, H, W): p, 0 if ignored
    intersection = (counted_p * onehot).sum(axis=pixel_axes)         # (C,): I_c
    denominator = counted_p.sum(axis=pixel_axes) + onehot.sum(axis=pixel_axes) + smooth   # (C,): D_c
    losses = (1 - (2 * intersection + smooth) / denominator) * class_weight   # (C,): w_c loss_c
    if reduction == "mean":
        return losses.sum() / class_weight.sum()
    return losses.sum() if reduction == "sum" else losses


def dice_loss(input: Tensor, target, weight=None, ignore_index: int = -100, smooth: float = 1.0,
              reduction: str = "mean") -> Tensor:
    """Soft multi-class Dice loss of (N, C) or (N, C, H, W) logits against integer targets.

    target: (N,) or (N, H, W) class indices in [0, C), or ignore_index.
    weight: optional (C,) class weights. smooth: s >= 0 added to both sides of the ratio.
    reduction: "mean" (weighted mean over classes), "sum" (weighted sum), "none" ((C,)).
    Saved for backward: the softmax p and the one-hot target, each (N, C, H, W),
    the counted-pixel mask (N, 1, H, W) and (C,) vectors (dice, denominators, weights).
    """
    op = "dice_loss"
    check_loss_input(op, input, reduction)
    check_smooth(op, smooth)
    xp = input.xp
    n_classes = input.shape[1]
    target = check_target(op, input, target, ignore_index)
    class_weight = check_weight(op, input, weight)
    if class_weight is None:
        class_weight = xp.ones(n_classes, dtype=input.dtype)

    per_class_shape = (1, n_classes) + (1,) * (input.ndim - 2)       # (1, C, 1, 1): broadcasts
    pixel_axes = (0,) + tuple(range(2, input.ndim))                  # every axis but C
    valid = (target != ignore_index)[:, None].astype(input.dtype)    # (N, 1, H, W): 1 if counted
    classes = xp.arange(n_classes).reshape(per_class_shape)
    onehot = (target[:, None] == classes) * valid                    # (N, C, H, W): g, 0 if ignored
    p = xp.exp(log_softmax_array(input.data, dim=1))                 # (N, C, H, W)
    counted_p = p * valid                                            # ignored pixels predict nothing
    intersection = (counted_p * onehot).sum(axis=pixel_axes)         # (C,): I_c
    denominator = counted_p.sum(axis=pixel_axes) + onehot.sum(axis=pixel_axes) + smooth  # (C,): D_c
    defined = denominator > 0                                        # False only if nothing counted, s = 0
    safe_denominator = xp.where(defined, denominator, 1)
    dice = xp.where(defined, (2 * intersection + smooth) / safe_denominator, 1)      # (C,)
    losses = class_weight * (1 - dice)                               # (C,): w_c loss_c
    total_weight = class_weight.sum()
    if reduction == "mean":
        out = losses.sum() / total_weight
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses

    # backward keeps p, onehot and valid alive (see the docstring): not the logits.
    def backward(grad):                      # grad: () for mean/sum, (C,) for none
        if reduction == "mean":
            a = class_weight * (grad / total_weight)                 # (C,): dL/dloss_c
        else:
            a = class_weight * grad
        a = xp.where(defined, a / safe_denominator, 0)               # (C,): a_c / D_c
        q = valid * a.reshape(per_class_shape) * (dice.reshape(per_class_shape) - 2 * onehot)
        return (p * (q - (q * p).sum(axis=1, keepdims=True)),)       # (N, C, H, W): softmax backward

    return Tensor.from_op(out, (input,), backward, op, ignore_index=ignore_index, smooth=smooth,
                          reduction=reduction)


def check_smooth(op: str, smooth) -> None:
    """ValueError unless smooth is a finite real number >= 0 (bools are refused too)."""
    if (not isinstance(smooth, numbers.Real) or isinstance(smooth, bool)
            or not smooth >= 0 or smooth == float("inf")):
        raise ValueError(f"{op}: smooth must be a finite number >= 0, got {smooth!r}")
