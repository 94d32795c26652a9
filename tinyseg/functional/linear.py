"""The fully connected (linear, dense) layer: y = x W^T + b.

x is (B, in_features), weight W is (out_features, in_features) as in
PyTorch (one row per output), bias b is (out_features,):

    y[b, o] = sum_i x[b, i] * W[o, i] + b[o]          y: (B, out_features)

Backward, with gy = dL/dy (B, out):

    dL/dx = gy @ W          (B, out) @ (out, in)  -> (B, in)
    dL/dW = gy^T @ x        (out, B) @ (B, in)    -> (out, in)
    dL/db = sum over B of gy                      -> (out,)

A 1x1 convolution is this same layer applied at every pixel, and a linear
layer over a flattened (C, k, k) window is a k x k convolution applied at one
position: that is how SlidingWindow.to_fcn() turns the patch classifier
into a fully convolutional network.
"""

from __future__ import annotations

from tinyseg.functional.validate import check_same_device_and_dtype, check_tensor
from tinyseg.tensor import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (B, in) @ weight (out, in)^T + bias (out,) -> (B, out).

    Saved for backward: x (B, in) and weight (out, in) themselves (no copies); nothing of the bias.
    """
    op = "linear"
    check_tensor(x, "input", op, 2, "(B, in_features)")
    check_tensor(weight, "weight", op, 2, "(out_features, in_features)")
    if bias is not None:
        check_tensor(bias, "bias", op, 1, "(out_features,)")
    check_same_device_and_dtype(op, input=x, weight=weight, bias=bias)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: input has {x.shape[1]} features (shape {x.shape}) but weight "
                         f"(out_features, in_features) expects {weight.shape[1]} (shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({weight.shape[0]},) "
                         f"for weight shape {weight.shape}")

    y = x.data @ weight.data.T                                   # (B, in) @ (in, out) -> (B, out)
    if bias is not None:
        y += bias.data                                           # (out,) broadcast over B

    def backward(gy):                                            # gy: (B, out)
        gx = gy @ weight.data if x.requires_grad else None       # (B, in)
        gw = gy.T @ x.data if weight.requires_grad else None     # (out, in)
        gb = gy.sum(axis=0) if bias is not None and bias.requires_grad else None   # (out,)
        return (gx, gw) if bias is None else (gx, gw, gb)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(y, parents, backward, op)
