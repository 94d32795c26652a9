"""Batch normalisation of (N, C, H, W) activations, one fused operator.

For each channel c, over the M = N * H * W values of that channel in the batch:

    mean_c = (1/M) sum x                          var_c = (1/M) sum (x - mean_c)^2
    xhat   = (x - mean_c) / sqrt(var_c + eps)     (zero mean, unit variance)
    y      = weight_c * xhat + bias_c             (the layer may undo it if that helps)

In training the statistics come from the batch, and running estimates are
updated for later use (PyTorch's rule, `momentum` = weight of the new batch):

    running_mean = (1 - momentum) * running_mean + momentum * mean_c
    running_var  = (1 - momentum) * running_var  + momentum * var_c * M / (M - 1)

(the running variance takes the unbiased estimate, the normalisation the
biased one). In evaluation the running estimates replace the batch ones, so a
prediction for one image does not depend on the others in its batch.

Backward. In evaluation mean and var are constants and y is just an affine
function of x. In training every x moves mean and var too; writing
g = dL/dxhat = dL/dy * weight and working the chain rule through mean and var gives

    dL/dx = (1 / (M * std)) * (M * g - sum(g) - xhat * sum(g * xhat))

with the sums over the channel's M values: the gradient minus its mean,
minus its component along xhat.

Two forms. batch_norm_textbook computes the four lines at the top as Tensor
operations (mean, variance, normalise, scale) and lets autograd find the
backward: read it first. batch_norm is the same numbers in one operator with
the backward above written out, because term by term each step is a pass over
memory (the passes saved are measured in benchmarks/results/kernels.md).
tests/test_textbook_forms.py proves the two equal in value and gradient.

How the fused form is computed. Per channel, both directions are affine
maps with three per-channel numbers, so each is evaluated as such instead of
term by term:

    forward    y  = x * scale + shift         scale = weight / std, shift = bias - mean * scale
    backward   dL/dx = gy * a + x * b + c      with a, b, c from sum(gy) and sum(gy * x)

Expanding xhat = (x - mean) / std in the formula above gives, with
D = sum(gy * (x - mean)) = sum(gy * x) - mean * sum(gy):

    a = weight / std,   b = -weight * D / (M * std^3),   c = -a * sum(gy) / M - b * mean

sum(gy * x) is one einsum (no (N, C, H, W) temporary), and xhat is never
stored: backward keeps only x (which its producer keeps anyway) and four
(C,) vectors, one (N, C, H, W) array less per layer than storing xhat.

Each pass runs sample by sample, the batch cut over the cores
(sample_threads.over_samples; samples under 512 KiB stay on one core, where
the hand-over would cost more): one sample's passes then read it from the
core's cache, not from memory; samples smaller than 1 MiB go a few at a time
(sample_threads.sample_groups: fewer NumPy calls, so the threads of a
data-parallel step hand Python's lock to each other less often). The variance
combines each sample's mean and squared deviations (Chan's rule: M2 = sum of
the samples' M2 + (H*W) * sum of (sample mean - mean)^2), so the statistics
take one pass over the batch.
Where each core runs the whole training step for its share of the batch
(data_parallel.py), the shares hand each other their samples' sums
(sample_threads.whole_batch) and all compute the whole batch's statistics, and
only the first updates the running estimates.
The (C, 1, 1) vectors are broadcast along a sample's rows of H*W inside
backend.buffer_within_rows: on rows of 4096 numbers or fewer NumPy would copy
them into its buffer first (measured in benchmarks/results/kernels.md).

batch_norm_relu is relu(batch_norm(...)) as one operator (the U-Net's blocks
run it): the forward's affine pass takes max(y, 0) of each sample while it is
in cache, and the backward makes ReLU's gradient, dL/dy = dL/d relu(y) *
(relu(y) > 0), in the pass that reads dL/d relu(y) for the sums of a, b, c
anyway; ReLU's own forward pass and one read of its gradient are saved
(measured in benchmarks/results/kernels.md).
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional import activation
from tinyseg.functional.activation import relu_backward_sample
from tinyseg.functional.sample_threads import (over_samples, sample_groups, updates_kept_state,
                                               whole_batch)
from tinyseg.functional.validate import check_same_device_and_dtype, check_tensor
from tinyseg.tensor import Tensor

AXES = (0, 2, 3)  # every axis but the channel axis


def batch_norm_textbook(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                        weight: Tensor | None = None, bias: Tensor | None = None,
                        training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """batch_norm below, as the formulas read: Tensor operations only, so autograd differentiates it.

    The same arguments, checks, numbers and running-estimate updates as
    batch_norm; its graph keeps x - mean, xhat and more (N, C, H, W) arrays for
    backward, where the fused form keeps x alone.
    """
    check_batch_norm_args("batch_norm", x, running_mean, running_var, weight, bias, training)
    c = x.shape[1]
    if training or running_mean is None:                        # the batch's statistics
        mean = x.mean(axis=AXES, keepdims=True)                 # (1, C, 1, 1)
        var = ((x - mean) ** 2).mean(axis=AXES, keepdims=True)  # (1, C, 1, 1) biased: divides by M
        if training and running_mean is not None:
            m = x.shape[0] * x.shape[2] * x.shape[3]            # values per channel
            update_running_estimates(running_mean, running_var, mean.data.reshape(c),
                                     var.data.reshape(c), m, momentum)
    else:                                                       # the running estimates, constants
        mean, var = running_mean.data.reshape(1, c, 1, 1), running_var.data.reshape(1, c, 1, 1)
    xhat = (x - mean) / (var + eps) ** 0.5                      # (N, C, H, W): per channel, mean 0, var 1
    y = xhat if weight is None else xhat * weight.reshape(1, c, 1, 1)
    return y if bias is None else y + bias.reshape(1, c, 1, 1)


def update_running_estimates(running_mean: Tensor, running_var: Tensor, mean, var, m: int,
                             momentum: float) -> None:
    """PyTorch's rule, in place: new = (1 - momentum) * old + momentum * batch, the variance unbiased."""
    running_mean.data *= 1 - momentum
    running_mean.data += momentum * mean
    running_var.data *= 1 - momentum
    running_var.data += momentum * var * (m / (m - 1))          # unbiased: divides by M - 1


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of x (N, C, H, W); weight, bias, running stats are (C,).

    training=True: use the batch's statistics and update running_mean and
    running_var in place (if given). training=False: use the running
    statistics (or the batch's, when none are given).
    Saved for backward: x (N, C, H, W) itself (no normalised copy x-hat) and
    (C,) vectors: the mean, 1 / std and the scale weight / std.
    """
    return normalization("batch_norm", x, running_mean, running_var, weight, bias, training,
                         momentum, eps, relu=False)


def batch_norm_relu(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None,
                    training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """relu(batch_norm(...)), the same numbers, as one operator (the U-Net's blocks, models/unet.py).

    Its forward takes max(y, 0) of each sample as the affine map writes it, in
    cache; its backward makes ReLU's gradient in the pass that sums dL/dy
    anyway (gradient_sums): see the module's docstring.
    Saved for backward: batch_norm's, and the output relu(y) (N, C, H, W).
    """
    return normalization("batch_norm_relu", x, running_mean, running_var, weight, bias, training,
                         momentum, eps, relu=True)


def batch_norm_relu_textbook(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                             weight: Tensor | None = None, bias: Tensor | None = None,
                             training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """batch_norm_relu as it reads: relu(batch_norm_textbook(...)), Tensor operations only."""
    return activation.relu(batch_norm_textbook(x, running_mean, running_var, weight, bias, training,
                                               momentum, eps))


def normalization(op: str, x: Tensor, running_mean, running_var, weight, bias, training: bool,
                  momentum: float, eps: float, relu: bool) -> Tensor:
    """batch_norm (relu False) or batch_norm_relu (relu True): the checks, forward and backward rule."""
    check_batch_norm_args(op, x, running_mean, running_var, weight, bias, training)
    xp = x.xp
    c = x.shape[1]
    use_batch_stats = training or running_mean is None

    m = None                                                    # values per channel in the batch
    if use_batch_stats:
        mean, var, m = batch_statistics(xp, x.data)             # (C,), (C,) biased: divides by M
        if training and running_mean is not None and updates_kept_state():   # in place, once
            update_running_estimates(running_mean, running_var, mean, var, m, momentum)
    else:
        mean, var = running_mean.data, running_var.data         # (C,)

    inv_std = 1 / xp.sqrt(var + eps)                            # (C,)
    scale = inv_std if weight is None else weight.data * inv_std  # (C,)
    shift = -mean * scale if bias is None else bias.data - mean * scale
    y = affine(xp, x.data, scale, shift, relu=relu)             # (N, C, H, W): x * scale + shift
    relu_output = y if relu else None                           # kept for backward only with relu

    def backward(gy):                                           # gy: (N, C, H, W); keeps x.data
        need_dot = use_batch_stats or (weight is not None and weight.requires_grad)
        gy, rows = gradient_sums(xp, gy, x.data if need_dot else None, relu_output)   # (N, 1 or 2, C)
        gy_sum, d = sums_and_d(rows, mean)                      # (C,) each, over these samples
        gx = None
        if x.requires_grad:
            a = scale                                           # weight / std
            if use_batch_stats:                                 # mean and var depend on x: the
                batch_sum, batch_d = sums_and_d(whole_batch(rows), mean)      # whole batch's sums
                b = -scale * batch_d * inv_std ** 2 / m
                shift_c = -a * batch_sum / m - b * mean
                into = gy if relu else None                     # with relu, gradient_sums made gy anew
                gx = affine(xp, gy, a, shift_c, x.data, b, out=into)   # (N, C, H, W): gy * a + x * b + c
            else:                                               # mean and var are constants
                gx = gy * a.reshape(1, c, 1, 1)
        gw = d * inv_std if weight is not None and weight.requires_grad else None   # sum(gy * xhat)
        gb = gy_sum if bias is not None and bias.requires_grad else None
        grads = (gx,)
        if weight is not None:
            grads += (gw,)                                      # (C,)
        if bias is not None:
            grads += (gb,)                                      # (C,)
        return grads

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return Tensor.from_op(y, parents, backward, op, training=use_batch_stats, eps=eps,
                          momentum=momentum, running_mean=running_mean, running_var=running_var,
                          weight=weight, bias=bias)


def check_batch_norm_args(op: str, x: Tensor, running_mean, running_var, weight, bias,
                          training: bool) -> None:
    """Shapes, dtypes and devices of batch norm's arguments, and more than one value per channel
    to train on."""
    check_tensor(x, "input", op, 4, "(N, C, H, W)")
    c = x.shape[1]
    named = {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias}
    for name, t in named.items():
        if t is not None:
            check_tensor(t, name, op, 1, "(C,)")
            if t.shape != (c,):
                raise ValueError(f"{op}: {name} has shape {t.shape}, expected ({c},) for input "
                                 f"of shape {x.shape}")
    check_same_device_and_dtype(op, input=x, **named)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    n, _, h, w = x.shape
    if training and n * h * w < 2:
        raise ValueError(f"{op}: training needs more than one value per channel, got input "
                         f"shape {x.shape}")


def batch_statistics(xp, x):
    """(mean, biased variance, M) of each channel of x (N, C, H, W), sample by sample on the cores;
    M = N * H * W values a channel. In a share of a batch that runs in shares (data_parallel.py),
    those of the whole batch.

    Each sample gives its channels' means and sums of squared deviations M2_s;
    Chan's rule joins them: M2 = sum_s M2_s + (H*W) * sum_s (mean_s - mean)^2.
    """
    n, c = x.shape[:2]
    means = xp.empty((n, c), dtype=x.dtype)                     # (N, C) each sample's means
    squares = xp.empty((n, c), dtype=x.dtype)                   # (N, C) each sample's M2_s
    pixels = x[0, 0].size                                       # H * W

    def share(start, stop):
        with backend.buffer_within_rows(xp, pixels):            # the mean broadcast along rows of H*W
            for first, last in sample_groups(start, stop, x[0].nbytes):   # one sample, or a few small ones
                values = x[first:last].reshape(last - first, c, -1)          # (g, C, H*W)
                means[first:last] = values.mean(axis=2)
                centred = values - means[first:last, :, None]                # (g, C, H*W), in cache
                squares[first:last] = xp.einsum("gci,gci->gc", centred, centred)

    over_samples(share, x, passes_only=True)
    stats = whole_batch(xp.stack([means, squares], axis=1))     # (N, 2, C): all shares' samples
    means, squares, m = stats[:, 0], stats[:, 1], len(stats) * pixels
    mean = means.mean(axis=0)                                   # (C,)
    spread = means - mean                                       # (N, C)
    m2 = squares.sum(axis=0) + pixels * xp.einsum("nc,nc->c", spread, spread)
    return mean, m2 / m, m


def sums_and_d(rows, mean) -> tuple:
    """(sum(gy), D = sum(gy * (x - mean)) = sum(gy * x) - mean * sum(gy) or None), each (C,),
    over the samples of gradient_sums' rows (N, 1 or 2, C)."""
    sums = rows.sum(axis=0)                                     # (1 or 2, C)
    return sums[0], (sums[1] - mean * sums[0] if len(sums) == 2 else None)


def gradient_sums(xp, gy, x=None, gy_mask=None):
    """(gy, rows): each sample's sums over H, W for each channel, rows (N, 1, C) of sum(gy), or
    (N, 2, C) of sum(gy) and sum(gy * x) where x is given; sample by sample (a few small ones at once).

    gy_mask None, or relu(y) of batch_norm_relu: gy arrives as dL/d relu(y), and
    ReLU's backward, gy * (gy_mask > 0), is made in the same pass, summed, and
    returned in gy's place (a new array).
    """
    n, c = gy.shape[:2]
    gy_sums = xp.empty((n, c), dtype=gy.dtype)
    dots = None if x is None else xp.empty((n, c), dtype=gy.dtype)
    passed = gy if gy_mask is None else xp.empty_like(gy)      # (N, C, H, W)

    def share(start, stop):
        groups = sample_groups(start, stop, gy[0].nbytes)      # one sample, or a few small ones
        most = groups[0][1] - groups[0][0]                      # the first group is the largest
        mask = None if gy_mask is None else xp.empty((most,) + gy.shape[1:], dtype=bool)
        for first, last in groups:
            if gy_mask is not None:
                relu_backward_sample(gy[first:last], gy_mask[first:last], mask[:last - first],
                                     passed[first:last])
            values = passed[first:last].reshape(last - first, c, -1)      # (g, C, H*W)
            gy_sums[first:last] = values.sum(axis=2)
            if x is not None:
                dots[first:last] = xp.einsum("gci,gci->gc", values, x[first:last].reshape(last - first, c, -1))

    over_samples(share, gy, passes_only=True)
    return passed, (gy_sums[:, None] if x is None else xp.stack([gy_sums, dots], axis=1))


def affine(xp, a, scale, shift, b=None, b_scale=None, relu: bool = False, out=None):
    """a * scale + shift (+ b * b_scale), per channel of (N, C, H, W) arrays, sample by sample
    (a few small ones at once).

    scale, shift, b_scale: (C,). The forward's y = x * scale + shift and the
    backward's dL/dx = gy * a + x * b + c, each sample's terms added in cache.
    relu: max(., 0) of each sample's result, in cache (batch_norm_relu's forward).
    out: the array the result goes to (a new one if None; a itself is allowed).
    """
    n, c = a.shape[:2]
    out = xp.empty_like(a) if out is None else out
    scale, shift = scale.reshape(c, 1, 1), shift.reshape(c, 1, 1)
    b_scale = None if b_scale is None else b_scale.reshape(c, 1, 1)

    def share(start, stop):
        groups = sample_groups(start, stop, a[0].nbytes)       # one sample, or a few small ones
        most = groups[0][1] - groups[0][0]                      # the first group is the largest
        term = None if b is None else xp.empty_like(b[:most])   # (g, C, H, W)
        with backend.buffer_within_rows(xp, a[0, 0].size):      # (C, 1, 1) vectors along rows of H*W
            for first, last in groups:
                part = slice(first, last)
                xp.multiply(a[part], scale, out=out[part])
                out[part] += shift
                if b is not None:
                    xp.multiply(b[part], b_scale, out=term[:last - first])
                    out[part] += term[:last - first]
                if relu:
                    xp.maximum(out[part], 0, out=out[part])

    over_samples(share, a, passes_only=True)
    return out
