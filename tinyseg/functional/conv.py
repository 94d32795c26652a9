"""Convolution and transpose convolution, built on im2col/col2im.

Shapes follow PyTorch: input (N, C, H, W), conv weight (O, C, kh, kw),
transpose-conv weight (C_in, C_out, kh, kw), output (N, O, OH, OW) with

    OH = (H + 2 * padding - kh) // stride + 1.

Three array kernels do all the work (plain arrays in, plain arrays out):

    conv_forward(x, w)          y  = W @ im2col(x)              the convolution
    conv_input_grad(gy, w)      gx = col2im(W^T @ gy)            its adjoint in x
    conv_weight_grad(gy, x)     gw = sum_n gy[n] @ im2col(x)[n]^T   its adjoint in W

Convolution and transpose convolution are each other's adjoints, so the two
autograd operators below are made of the same three kernels, swapped:

    conv2d            forward: conv_forward       backward: conv_input_grad, conv_weight_grad
    conv_transpose2d  forward: conv_input_grad    backward: conv_forward,    conv_weight_grad

Memory: im2col copies each pixel kh*kw times. To keep the peak bounded, the
batch is processed in chunks of samples whose columns fit in
COLUMN_BUDGET_BYTES (at least one sample at a time). The columns are not kept
for backward; they are rebuilt there, one chunk at a time.
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional.validate import (
    check_same_device_and_dtype, check_tensor, non_negative_pair, positive_pair,
)
from tinyseg.im2col import col2im, im2col, output_size
from tinyseg.tensor import Tensor

COLUMN_BUDGET_BYTES = 64 * 2**20  # largest im2col buffer built at once (unless one sample needs more)


def sample_chunks(batch: int, bytes_per_sample: int):
    """(start, stop) ranges over the batch, each chunk's columns within the budget."""
    step = max(1, COLUMN_BUDGET_BYTES // max(1, bytes_per_sample))
    return [(start, min(start + step, batch)) for start in range(0, batch, step)]


# ----------------------------------------------------------------- array kernels
def conv_forward(x, w, stride: tuple, padding: tuple):
    """y = conv(x, w): (N, C, H, W), (O, C, kh, kw) -> (N, O, OH, OW)."""
    xp = backend.get_array_module(x)
    n, c, h, width = x.shape
    o, _, kh, kw = w.shape
    oh = output_size(h, kh, stride[0], padding[0])
    ow = output_size(width, kw, stride[1], padding[1])
    w_rows = w.reshape(o, c * kh * kw)                                   # (O, K)
    y = xp.empty((n, o, oh * ow), dtype=x.dtype)                         # (N, O, L)
    for start, stop in sample_chunks(n, c * kh * kw * oh * ow * x.itemsize):
        cols = im2col(x[start:stop], (kh, kw), stride, padding)          # (n, K, L)
        xp.matmul(w_rows, cols, out=y[start:stop])                       # (O, K) @ (n, K, L)
    return y.reshape(n, o, oh, ow)


def conv_input_grad(gy, w, input_shape: tuple, stride: tuple, padding: tuple):
    """gx = conv's adjoint in x: (N, O, OH, OW), (O, C, kh, kw) -> input_shape (N, C, H, W)."""
    xp = backend.get_array_module(gy)
    n, o, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    gy_rows = gy.reshape(n, o, oh * ow)                                  # (N, O, L)
    w_cols = w.reshape(o, c * kh * kw).T                                 # (K, O)
    gx = xp.empty(input_shape, dtype=gy.dtype)                           # (N, C, H, W)
    for start, stop in sample_chunks(n, c * kh * kw * oh * ow * gy.itemsize):
        gcols = xp.matmul(w_cols, gy_rows[start:stop])                   # (n, K, L)
        chunk_shape = (stop - start,) + tuple(input_shape[1:])
        gx[start:stop] = col2im(gcols, chunk_shape, (kh, kw), stride, padding)
    return gx


def conv_weight_grad(gy, x, weight_shape: tuple, stride: tuple, padding: tuple):
    """gw = conv's adjoint in w: (N, O, OH, OW), (N, C, H, W) -> weight_shape (O, C, kh, kw)."""
    xp = backend.get_array_module(gy)
    n, o, oh, ow = gy.shape
    _, c, kh, kw = weight_shape
    gy_rows = gy.reshape(n, o, oh * ow)                                  # (N, O, L)
    gw = xp.zeros((o, c * kh * kw), dtype=gy.dtype)                      # (O, K)
    for start, stop in sample_chunks(n, c * kh * kw * oh * ow * gy.itemsize):
        cols = im2col(x[start:stop], (kh, kw), stride, padding)          # (n, K, L)
        for i in range(stop - start):
            gw += gy_rows[start + i] @ cols[i].T                         # (O, L) @ (L, K)
    return gw.reshape(weight_shape)


# ----------------------------------------------------------------- autograd operators
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """2-d convolution (cross-correlation, as in PyTorch) of an (N, C, H, W) batch.

    weight is (O, C, kh, kw), bias (O,). stride > 1 is a strided convolution, the
    learned alternative to pooling for downsampling. stride and padding are ints
    or (h, w) pairs; kernels need not be square.
    """
    op = "conv2d"
    stride = positive_pair(stride, "stride", op)
    padding = non_negative_pair(padding, "padding", op)
    check_conv_args(op, x, weight, bias, in_axis=1, out_axis=0)
    n, c, h, width = x.shape
    o, _, kh, kw = weight.shape
    if h + 2 * padding[0] < kh or width + 2 * padding[1] < kw:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * padding[0]}, {width + 2 * padding[1]}) (input shape "
                         f"{x.shape}, padding {padding})")

    y = conv_forward(x.data, weight.data, stride, padding)               # (N, O, OH, OW)
    if bias is not None:
        y += bias.data.reshape(1, o, 1, 1)

    def backward(gy):                                                    # gy: (N, O, OH, OW)
        gx = conv_input_grad(gy, weight.data, x.shape, stride, padding) if x.requires_grad else None
        gw = conv_weight_grad(gy, x.data, weight.shape, stride, padding) if weight.requires_grad else None
        gb = gy.sum(axis=(0, 2, 3)) if bias is not None and bias.requires_grad else None
        return gx, gw, gb                                                # (N,C,H,W), (O,C,kh,kw), (O,)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(y, parents, backward, op)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0) -> Tensor:
    """Transpose convolution: the adjoint of conv2d, used to upsample.

    x (N, C_in, H, W), weight (C_in, C_out, kh, kw) as in PyTorch. Each input pixel
    paints a kh x kw patch of the output, `stride` pixels apart; overlaps add.
    The output size is

        OH = (H - 1) * stride - 2 * padding + kh + output_padding,

    and output_padding (< stride) picks one of the `stride` output sizes that a
    conv2d with these settings would map back to H.
    """
    op = "conv_transpose2d"
    stride = positive_pair(stride, "stride", op)
    padding = non_negative_pair(padding, "padding", op)
    output_padding = non_negative_pair(output_padding, "output_padding", op)
    check_conv_args(op, x, weight, bias, in_axis=0, out_axis=1)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than "
                         f"stride {stride} in each dimension")
    n, _, h, width = x.shape
    _, c_out, kh, kw = weight.shape
    oh = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    ow = (width - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output size ({oh}, {ow}) is not positive for input shape "
                         f"{x.shape}, kernel ({kh}, {kw}), stride {stride}, padding {padding}")
    out_shape = (n, c_out, oh, ow)

    y = conv_input_grad(x.data, weight.data, out_shape, stride, padding)   # (N, C_out, OH, OW)
    if bias is not None:
        y += bias.data.reshape(1, c_out, 1, 1)

    def backward(gy):                                                    # gy: (N, C_out, OH, OW)
        gx = conv_forward(gy, weight.data, stride, padding) if x.requires_grad else None
        gw = conv_weight_grad(x.data, gy, weight.shape, stride, padding) if weight.requires_grad else None
        gb = gy.sum(axis=(0, 2, 3)) if bias is not None and bias.requires_grad else None
        return gx, gw, gb                                         # (N,C_in,H,W), (C_in,C_out,kh,kw), (C_out,)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(y, parents, backward, op)


def check_conv_args(op: str, x, weight, bias, in_axis: int, out_axis: int) -> None:
    """Shapes, dtypes and devices of a convolution's arguments.

    `in_axis`/`out_axis` say which weight axis holds the input/output channels
    (0/1 for transpose convolution, 1/0 for convolution).
    """
    layout = "(out_channels, in_channels, kh, kw)" if in_axis == 1 else "(in_channels, out_channels, kh, kw)"
    check_tensor(x, "input", op, 4, "(N, C, H, W)")
    check_tensor(weight, "weight", op, 4, layout)
    if bias is not None:
        check_tensor(bias, "bias", op, 1, "(out_channels,)")
    check_same_device_and_dtype(op, input=x, weight=weight, bias=bias)
    if x.shape[1] != weight.shape[in_axis]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight "
                         f"{layout} expects {weight.shape[in_axis]} (shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[out_axis],):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({weight.shape[out_axis]},) "
                         f"for weight shape {weight.shape}")
    if min(weight.shape) < 1 or x.size == 0:
        raise ValueError(f"{op}: empty input {x.shape} or weight {weight.shape}")
