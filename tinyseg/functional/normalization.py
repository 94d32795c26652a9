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
minus its component along xhat. Composing this from Tensor operations would
also work, but would keep five (N, C, H, W) temporaries in the graph; the
fused operator keeps only xhat.
"""

from __future__ import annotations

from tinyseg.functional.validate import check_same_device_and_dtype, check_tensor
from tinyseg.tensor import Tensor

AXES = (0, 2, 3)  # every axis but the channel axis


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of x (N, C, H, W); weight, bias, running stats are (C,).

    training=True: use the batch's statistics and update running_mean and
    running_var in place (if given). training=False: use the running
    statistics (or the batch's, when none are given).
    """
    op = "batch_norm"
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
    xp = x.xp
    n, _, h, w = x.shape
    m = n * h * w                                               # values per channel
    use_batch_stats = training or running_mean is None

    if use_batch_stats:
        if m < 2 and training:
            raise ValueError(f"{op}: training needs more than one value per channel, got input "
                             f"shape {x.shape}")
        mean = x.data.mean(axis=AXES)                           # (C,)
        var = x.data.var(axis=AXES)                             # (C,) biased: divides by M
        if training and running_mean is not None:               # update the running estimates in place
            running_mean.data *= 1 - momentum
            running_mean.data += momentum * mean
            running_var.data *= 1 - momentum
            running_var.data += momentum * var * (m / (m - 1))  # unbiased: divides by M - 1
    else:
        mean, var = running_mean.data, running_var.data         # (C,)

    inv_std = 1 / xp.sqrt(var + eps)                            # (C,)
    xhat = (x.data - mean.reshape(1, c, 1, 1)) * inv_std.reshape(1, c, 1, 1)   # (N, C, H, W)
    y = xhat
    if weight is not None:
        y = y * weight.data.reshape(1, c, 1, 1)
    if bias is not None:
        y = y + bias.data.reshape(1, c, 1, 1)                   # (N, C, H, W)

    def backward(gy):                                           # gy: (N, C, H, W)
        g = gy if weight is None else gy * weight.data.reshape(1, c, 1, 1)    # dL/dxhat
        gx = None
        if x.requires_grad:
            if use_batch_stats:                                 # mean and var depend on x
                g_sum = g.sum(axis=AXES, keepdims=True)         # (1, C, 1, 1)
                gxhat_sum = (g * xhat).sum(axis=AXES, keepdims=True)
                gx = (m * g - g_sum - xhat * gxhat_sum) * (inv_std.reshape(1, c, 1, 1) / m)
            else:                                               # mean and var are constants
                gx = g * inv_std.reshape(1, c, 1, 1)            # (N, C, H, W)
        gw = (gy * xhat).sum(axis=AXES) if weight is not None and weight.requires_grad else None
        gb = gy.sum(axis=AXES) if bias is not None and bias.requires_grad else None
        grads = (gx,)
        if weight is not None:
            grads += (gw,)                                      # (C,)
        if bias is not None:
            grads += (gb,)                                      # (C,)
        return grads

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return Tensor.from_op(y, parents, backward, op)
