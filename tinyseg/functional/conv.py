"""Convolution and transpose convolution, built on im2col/col2im.

Shapes follow PyTorch: input (N, C, H, W), conv weight (O, C, kh, kw),
transpose-conv weight (C_in, C_out, kh, kw), output (N, O, OH, OW) with

    OH = (H + 2 * padding - kh) // stride + 1.

Three array kernels do all the work (plain arrays in, plain arrays out):

    conv_forward(x, w)          y  = W @ im2col(x)               the convolution
    conv_input_grad(gy, w)      gx = col2im(W^T @ gy)             its adjoint in x
    conv_weight_grad(gy, x)     gw = gy @ im2col(x)^T             its adjoint in W

with W the weight as an (O, C*kh*kw) matrix and gy, y as (O, N*OH*OW) matrices.

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
from tinyseg.im2col import col2im, grid_shape, im2col, output_size, pad_image
from tinyseg.tensor import Tensor

FEW_OUTPUTS = 4  # forward skips im2col when out_channels * FEW_OUTPUTS <= in_channels (stride 1)
COLUMN_BUDGET_BYTES = 16 * 2**20  # largest im2col buffer built at once (unless one sample needs more)


def sample_chunks(batch: int, bytes_per_sample: int):
    """(start, stop) ranges over the batch, each chunk's columns within the budget."""
    step = max(1, COLUMN_BUDGET_BYTES // max(1, bytes_per_sample))
    return [(start, min(start + step, batch)) for start in range(0, batch, step)]


class ColumnPlan:
    """Where the windows of one convolution lie, and the chunks to build them in.

    rows x cols is the grid of window positions: (OH, OW), or (OH, Wp) on
    im2col's "wide" grid, which stride-1 convolutions use because its columns
    copy twice as fast (see tinyseg/im2col.py). The kernels below compute on
    that grid and keep only the first OW columns of each row.
    """

    def __init__(self, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, itemsize: int):
        n, c, h, w = image_shape
        self.image_shape, self.kernel, self.stride, self.padding = tuple(image_shape), kernel, stride, padding
        self.wide = tuple(stride) == (1, 1)
        self.rows, self.cols = grid_shape((h, w), kernel, stride, padding, self.wide)
        self.out_w = output_size(w, kernel[1], stride[1], padding[1])    # OW
        self.depth = c * kernel[0] * kernel[1]                           # K = C*kh*kw
        self.chunks = sample_chunks(n, self.depth * self.rows * self.cols * itemsize)
        self.chunk_size = self.chunks[0][1] - self.chunks[0][0]

    def buffer(self, xp, channels: int, dtype, zero: bool = False):
        """A reusable (channels, chunk * rows * cols) buffer (zeros if `zero`, for widen's junk)."""
        shape = (channels, self.chunk_size * self.rows * self.cols)
        return xp.zeros(shape, dtype=dtype) if zero else xp.empty(shape, dtype=dtype)

    def columns(self, x_chunk, buffer):
        """im2col of a chunk of images into `buffer`: (K, n * rows * cols)."""
        out = buffer[:, :len(x_chunk) * self.rows * self.cols]
        return im2col(x_chunk, self.kernel, self.stride, self.padding, self.wide, out=out)

    def images(self, cols, n: int):
        """col2im of a chunk's columns: (K, n * rows * cols) -> (n, C, H, W)."""
        shape = (n,) + self.image_shape[1:]
        return col2im(cols, shape, self.kernel, self.stride, self.padding, self.wide)

    def crop(self, grid_array, n: int):
        """(O, n * rows * cols) on the grid -> (n, O, OH, OW), a view."""
        o = grid_array.shape[0]
        return grid_array.reshape(o, n, self.rows, self.cols)[..., :self.out_w].transpose(1, 0, 2, 3)

    def widen(self, gy_chunk, buffer):
        """(n, O, OH, OW) -> (O, n * rows * cols) on the grid, zeros in the junk columns."""
        n, o = gy_chunk.shape[:2]
        grid = buffer[:, :n * self.rows * self.cols]
        grid.reshape(o, n, self.rows, self.cols)[..., :self.out_w] = gy_chunk.transpose(1, 0, 2, 3)
        return grid


# ----------------------------------------------------------------- array kernels
def conv_forward(x, w, stride: tuple, padding: tuple):
    """y = conv(x, w): (N, C, H, W), (O, C, kh, kw) -> (N, O, OH, OW)."""
    xp = backend.get_array_module(x)
    o, c, kh, kw = w.shape
    plan = ColumnPlan(x.shape, (kh, kw), stride, padding, x.itemsize)
    if plan.wide and o * FEW_OUTPUTS <= c:
        return conv_forward_by_taps(x, w, plan)
    w_rows = w.reshape(o, plan.depth)                                    # (O, K)
    cols_buffer = plan.buffer(xp, plan.depth, x.dtype)                   # (K, n*L)
    y_buffer = plan.buffer(xp, o, x.dtype)                               # (O, n*L)
    y = xp.empty((x.shape[0], o, plan.rows, plan.out_w), dtype=x.dtype)  # (N, O, OH, OW)
    for start, stop in plan.chunks:
        cols = plan.columns(x[start:stop], cols_buffer)                  # (K, n*L)
        grid = xp.matmul(w_rows, cols, out=y_buffer[:, :cols.shape[1]])  # (O, K) @ (K, n*L)
        y[start:stop] = plan.crop(grid, stop - start)
    return y


def conv_forward_by_taps(x, w, plan: ColumnPlan):
    """The same convolution as a sum over the kh*kw taps, with no column buffer.

    On the wide grid, row (c, i, j) of im2col(x) is just the flattened padded
    image shifted by i*Wp + j (see tinyseg/im2col.py), so

        y = sum over taps (i, j) of  W[:, :, i, j] (O, C) @ shifted_ij (C, rows*cols)

    where each shifted_ij is a view: nothing is copied. im2col writes kh*kw
    copies of the image to memory and reads them back once; that pays off when
    the product does a lot of work per copied number (many output channels),
    but not for a layer with few outputs and a large kernel, such as the
    11x11 head of SlidingWindow.to_fcn(), where this loop reads the same small
    padded image, which stays in cache, kh*kw times instead.
    """
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    flat = pad_image(x, plan.padding, wide=True).reshape(n, c, -1)      # (N, C, (Hp+1)*Wp)
    length = plan.rows * plan.cols                                       # L = OH * Wp
    y_grid = xp.zeros((n, o, length), dtype=x.dtype)                     # (N, O, L)
    for i in range(kh):
        for j in range(kw):
            start = i * plan.cols + j                                    # the tap's shift
            for sample in range(n):
                y_grid[sample] += w[:, :, i, j] @ flat[sample, :, start:start + length]  # (O, C) @ (C, L)
    return y_grid.reshape(n, o, plan.rows, plan.cols)[..., :plan.out_w].copy()   # (N, O, OH, OW)


def conv_input_grad(gy, w, input_shape: tuple, stride: tuple, padding: tuple):
    """gx = conv's adjoint in x: (N, O, OH, OW), (O, C, kh, kw) -> input_shape (N, C, H, W)."""
    xp = backend.get_array_module(gy)
    o, c, kh, kw = w.shape
    plan = ColumnPlan(input_shape, (kh, kw), stride, padding, gy.itemsize)
    w_cols = w.reshape(o, plan.depth).T                                  # (K, O)
    gy_buffer = plan.buffer(xp, o, gy.dtype, zero=True)                  # (O, n*L)
    gcols_buffer = plan.buffer(xp, plan.depth, gy.dtype)                 # (K, n*L)
    gx = xp.empty(input_shape, dtype=gy.dtype)                           # (N, C, H, W)
    for start, stop in plan.chunks:
        gy_grid = plan.widen(gy[start:stop], gy_buffer)                  # (O, n*L)
        gcols = xp.matmul(w_cols, gy_grid, out=gcols_buffer[:, :gy_grid.shape[1]])  # (K, O) @ (O, n*L)
        gx[start:stop] = plan.images(gcols, stop - start)
    return gx


def conv_weight_grad(gy, x, weight_shape: tuple, stride: tuple, padding: tuple):
    """gw = conv's adjoint in w: (N, O, OH, OW), (N, C, H, W) -> weight_shape (O, C, kh, kw)."""
    xp = backend.get_array_module(gy)
    o, c, kh, kw = weight_shape
    plan = ColumnPlan(x.shape, (kh, kw), stride, padding, x.itemsize)
    cols_buffer = plan.buffer(xp, plan.depth, x.dtype)                   # (K, n*L)
    gy_buffer = plan.buffer(xp, o, gy.dtype, zero=True)                  # (O, n*L)
    gw_t = xp.zeros((plan.depth, o), dtype=gy.dtype)                     # (K, O) = gw^T
    for start, stop in plan.chunks:
        cols = plan.columns(x[start:stop], cols_buffer)                  # (K, n*L)
        gy_grid = plan.widen(gy[start:stop], gy_buffer)                  # (O, n*L)
        # gw += gy @ cols^T, computed as its transpose cols @ gy^T: the same
        # numbers, but BLAS splits a (K, n*L) @ (n*L, O) product far better
        # across threads than the long, thin (O, n*L) @ (n*L, K) one.
        gw_t += cols @ gy_grid.T                                         # (K, n*L) @ (n*L, O)
    return gw_t.T.reshape(weight_shape)


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
