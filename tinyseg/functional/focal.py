"""Focal loss (Lin et al. 2017): cross-entropy that lowers the say of pixels already right.

For one pixel with class scores x (C of them), p = softmax(x) and true class t,
write p_t for the probability of the true class. Cross-entropy is -log p_t;
the focal loss multiplies it by a modulating factor:

    loss = -(1 - p_t)^gamma * log p_t          gamma >= 0

A pixel predicted well (p_t = 0.9) has (1 - p_t)^2 = 0.01: with gamma = 2 it
counts a hundred times less than in cross-entropy, while a pixel predicted
badly (p_t = 0.1, factor 0.81) keeps most of its loss. The many easy
background pixels of a segmentation batch stop drowning the few hard ones.
gamma = 0 is exactly cross-entropy (x^0 = 1, even for x = 0). Since
0 <= 1 - p_t <= 1, the loss can only shrink as gamma grows.

Class weights and ignore_index work as in cross_entropy (loss.py): a pixel
whose target is ignore_index adds nothing, and with class weights w the mean
is weighted, dividing by the sum of the pixels' class weights (not by the
number of pixels), as PyTorch's cross-entropy defines it:

    mean loss = sum_i w[t_i] * loss_i / sum_i w[t_i]     over pixels i not ignored

Stable for any finite scores: log p_t is read from the max-shifted
log-sum-exp (log_softmax_array), never from log(softmax), and 1 - p_t is
computed as -expm1(log p_t), exact even when p_t is within 1e-16 of 1.

The backward, written out. Let l = log p_t and q = 1 - p_t, so loss = -q^gamma l.
Through the softmax, d l / d x_j = onehot_j - p_j and d q / d x_j = -p_t (onehot_j - p_j),
so by the product rule

    d loss / d x_j = -(gamma q^(gamma-1) (d q / d x_j) l + q^gamma (d l / d x_j))
                   = g * (p_j - onehot_j),
    g = q^gamma - gamma p_t q^(gamma-1) l                (one number per pixel)

Cross-entropy's gradient p - onehot, scaled per pixel by g (g = 1 for
gamma = 0). With log p <= p - 1, l / q <= -1, so g >= q^gamma >= 0: the focal
gradient points where cross-entropy's does, only shorter. Each pixel's g is
then multiplied, as in cross_entropy, by its weight w[t_i] (0 if ignored),
by the incoming gradient, and for "mean" divided by sum_i w[t_i].

For 0 < gamma < 1, q^(gamma-1) is infinite at p_t = 1, but l is 0 there and
q^(gamma-1) l = q^gamma (l / q) -> 0 * (-1) = 0. So g is computed as

    g = q^gamma (1 - gamma p_t (l / q)),    with l / q taken as its limit -1 where q = 0,

which has no infinity in it for any gamma >= 0: confident logits (margins of
1e3) give a finite loss and gradient.

Two forms. focal_loss_textbook is the loss line at the top as Tensor
operations (log_softmax, the true class picked by a one-hot mask, the power,
the weighted mean) with autograd finding the backward: read it first.
focal_loss is one operator with the backward above written out, finite for
every gamma >= 0 and every finite score, where autograd through
(1 - p_t)^gamma meets 0 * inf at p_t = 1 for gamma < 1.
tests/test_textbook_forms.py proves the two equal in value and gradient.
"""

from __future__ import annotations

import math
import numbers

from tinyseg.functional.activation import log_softmax, log_softmax_array
from tinyseg.functional.loss import (
    check_loss_input, check_target, check_weight, onehot_and_pixel_weights, pixel_weights,
    reduce_pixel_losses,
)
from tinyseg.tensor import Tensor


def focal_loss_textbook(input: Tensor, target, gamma: float = 2.0, weight=None,
                        ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """focal_loss below, as the formula reads: Tensor operations only, so autograd differentiates it.

    The same arguments and numbers as focal_loss where p_t < 1. Where a pixel's
    p_t rounds to 1 and 0 < gamma < 1, autograd's (1 - p_t)^(gamma - 1) is
    infinite and its gradient nan; focal_loss takes the limit there.
    """
    op = "focal_loss"
    check_loss_input(op, input, reduction)
    check_gamma(op, gamma)
    target = check_target(op, input, target, ignore_index)
    onehot, pixel_weight = onehot_and_pixel_weights(input, target, check_weight(op, input, weight),
                                                    ignore_index)
    log_pt = (log_softmax(input, dim=1) * onehot).sum(axis=1)        # (N, H, W): log p of the true class
    modulating = (1 - log_pt.exp()) ** gamma                         # (N, H, W): (1 - p_t)^gamma
    losses = -modulating * log_pt * pixel_weight                     # (N, H, W): w[t], 0 where ignored
    return reduce_pixel_losses(losses, pixel_weight.sum(), reduction)


def focal_loss(input: Tensor, target, gamma: float = 2.0, weight=None, ignore_index: int = -100,
               reduction: str = "mean") -> Tensor:
    """Focal loss -(1 - p_t)^gamma log p_t of (N, C) or (N, C, H, W) logits against integer targets.

    target: (N,) or (N, H, W) class indices in [0, C), or ignore_index.
    gamma: a finite number >= 0 (0 is cross-entropy). weight: optional (C,) class weights.
    reduction: "mean" (weighted by w[t_i], divided by sum_i w[t_i]), "sum" or "none" ((N[, H, W])).

    Saved for backward: p, the softmax (N, C, H, W); the one-hot target as bools
    (N, C, H, W); and g times the pixel weights (N, H, W).
    """
    op = "focal_loss"
    check_loss_input(op, input, reduction)
    check_gamma(op, gamma)
    xp = input.xp
    n_classes = input.shape[1]
    target = check_target(op, input, target, ignore_index)
    class_weight = check_weight(op, input, weight)

    valid = target != ignore_index                                   # (N, H, W) bool
    safe_target = xp.where(valid, target, 0)                         # ignored -> any real class
    classes = xp.arange(n_classes).reshape((1, n_classes) + (1,) * (input.ndim - 2))
    onehot = safe_target[:, None] == classes                         # (N, C, H, W) bool
    log_p = log_softmax_array(input.data, dim=1)                     # (N, C, H, W), max-shifted
    log_pt = xp.take_along_axis(log_p, safe_target[:, None], axis=1)[:, 0]   # (N, H, W): l <= 0
    p = xp.exp(log_p, out=log_p)                                     # (N, C, H, W) softmax, in place
    p_t = xp.exp(log_pt)                                             # (N, H, W)
    q = -xp.expm1(log_pt)                                            # (N, H, W): 1 - p_t, exact near 1
    modulating = q ** gamma                                          # (N, H, W): (1 - p_t)^gamma
    pixel_weight = pixel_weights(valid, safe_target, class_weight, input.dtype)   # (N, H, W)
    losses = -modulating * log_pt * pixel_weight                     # (N, H, W)
    total_weight = pixel_weight.sum()
    out = reduce_pixel_losses(losses, total_weight, reduction)

    counted = q > 0                                                  # False where p_t rounds to 1
    l_over_q = xp.where(counted, log_pt / xp.where(counted, q, 1), -1)   # (N, H, W): l / q, -> -1
    g = modulating * (1 - gamma * p_t * l_over_q)                    # (N, H, W): dloss/dx = g (p - onehot)
    weighted_g = pixel_weight * g                                    # (N, H, W)

    def backward(grad):                      # grad: () for mean/sum, (N, H, W) for none
        if reduction == "mean":
            coefficient = weighted_g * (grad / total_weight)         # (N, H, W)
        else:
            coefficient = weighted_g * grad
        return ((p - onehot) * coefficient[:, None],)                # (N, C, H, W)

    return Tensor.from_op(out, (input,), backward, op, gamma=gamma, ignore_index=ignore_index,
                          reduction=reduction)


def check_gamma(op: str, gamma) -> None:
    """ValueError unless gamma is a finite real number >= 0 (bools are refused too)."""
    if (not isinstance(gamma, numbers.Real) or isinstance(gamma, bool)
            or not gamma >= 0 or not math.isfinite(gamma)):
        raise ValueError(f"{op}: gamma must be a finite number >= 0, got {gamma!r}")
