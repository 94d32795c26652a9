"""Activations: relu, softmax and log_softmax.

softmax turns a vector of scores into probabilities, p_k = e^{x_k} / sum_j e^{x_j}.
Computed as written, e^{1000} overflows; subtracting the largest score first
changes nothing (the factor e^{-max} cancels) and keeps every exponent <= 0:

    log_softmax(x)_k = (x_k - m) - log sum_j e^{x_j - m},   m = max_j x_j

This is the log-sum-exp trick; cross_entropy uses the same function.
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional.sample_threads import over_samples
from tinyseg.functional.validate import check_tensor
from tinyseg.tensor import Tensor


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise: Tensor.relu (read it first), its passes cut over the cores.

    The batch's samples run in shares on the cores (sample_threads.over_samples),
    because one core's copy bandwidth is about half of what two reach on the
    machines measured (benchmarks/results/kernels.md; samples under 512 KiB
    stay on one core); the numbers are Tensor.relu's. Saved for backward: the
    output, shaped like x (where it is > 0 the gradient passes).
    """
    check_tensor(x, "input", "relu")
    if x.ndim < 2:
        return x.relu()
    xp = x.xp
    out = xp.empty_like(x.data)
    over_samples(lambda start, stop: xp.maximum(x.data[start:stop], 0, out=out[start:stop]), x.data,
                 passes_only=True)

    def backward(grad):  # 1 where x > 0, else 0
        gx = xp.empty_like(grad)

        def share(start, stop):
            passes = xp.empty(grad.shape[1:], dtype=bool)           # one sample's mask
            for sample in range(start, stop):
                relu_backward_sample(grad[sample], out[sample], passes, gx[sample])

        over_samples(share, grad, passes_only=True)
        return (gx,)

    return Tensor.from_op(out, (x,), backward, "relu")


def relu_backward_sample(grad, out, passes, into):
    """into = grad * (out > 0): ReLU's backward for one sample (or a group), given its output `out`.

    passes: a bool buffer shaped like out (the mask); into: where the gradient
    goes (returned). The fused convolution (fast_conv.py, trick 11) runs the
    same rule on each sample as its kernels first read it.
    """
    xp = backend.get_array_module(out)
    xp.greater(out, 0, out=passes)
    return xp.multiply(grad, passes, out=into)


def relu_buffers(xp, out):
    """(mask, gradient) buffers of one sample of `out` (N, ...) for relu_passed; None where out is None."""
    if out is None:
        return None
    return xp.empty(out.shape[1:], dtype=bool), xp.empty(out.shape[1:], dtype=out.dtype)


def relu_passed(grad, out, sample: int, buffers):
    """grad[sample], times (out[sample] > 0) where a ReLU's output `out` is given (else None).

    A fused kernel's dL/dy of one sample from dL/d relu(y) (fast_conv.py, trick 11),
    made in `buffers` (relu_buffers(xp, out)), which the next sample overwrites.
    """
    if out is None:
        return grad[sample]
    passes, into = buffers
    return relu_backward_sample(grad[sample], out[sample], passes, into)


def log_softmax_array(x, dim: int):
    """log_softmax on a plain array, stable for any finite scores."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=dim, keepdims=True)                     # every entry <= 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


def check_dim(x: Tensor, dim: int, op: str) -> None:
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{op}: dim={dim} is out of range for input of shape {x.shape}")


def log_softmax(x: Tensor, dim: int = 1) -> Tensor:
    """log of softmax along `dim` (the class axis, 1 for NCHW logits).

    Saved for backward: the output log p, shaped like x (not x itself).
    """
    check_tensor(x, "input", "log_softmax")
    check_dim(x, dim, "log_softmax")
    out = log_softmax_array(x.data, dim)
    xp = x.xp

    def backward(grad):  # d/dx_j of sum_k g_k log p_k = g_j - p_j * sum_k g_k
        return (grad - xp.exp(out) * grad.sum(axis=dim, keepdims=True),)

    return Tensor.from_op(out, (x,), backward, "log_softmax", dim=dim)


def softmax(x: Tensor, dim: int = 1) -> Tensor:
    """Probabilities along `dim`: entries in (0, 1] that sum to 1.

    Saved for backward: the output p, shaped like x (not x itself).
    """
    check_tensor(x, "input", "softmax")
    check_dim(x, dim, "softmax")
    xp = x.xp
    p = xp.exp(log_softmax_array(x.data, dim))

    def backward(grad):  # d/dx_j of sum_k g_k p_k = p_j (g_j - sum_k g_k p_k)
        return (p * (grad - (grad * p).sum(axis=dim, keepdims=True)),)

    return Tensor.from_op(p, (x,), backward, "softmax", dim=dim)
