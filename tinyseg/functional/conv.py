"""Convolution and transpose convolution, the textbook way: im2col, one matmul, col2im.

Shapes follow PyTorch: input (N, C, H, W), conv weight (O, C, kh, kw),
transpose-conv weight (C_in, C_out, kh, kw), output (N, O, OH, OW) with

    OH = (H + 2 * padding - kh) // stride + 1.

Three array kernels do all the work (plain arrays in, plain arrays out):

    textbook_forward(x, w, b)     y  = W @ im2col(x) + b            the convolution (b: none or (O,))
    textbook_input_grad(gy, w)    gx = col2im(W^T @ gy)             its adjoint in x
    textbook_weight_grad(gy, x)   gw = gy @ im2col(x)^T             its adjoint in W

with W the weight as an (O, C*kh*kw) matrix and gy, y as (O, N*OH*OW) matrices
(tinyseg/im2col.py draws the columns for a 4x4 image). The bias b is added at
every pixel, so its gradient is dL/dy summed over samples and pixels
(textbook_backward).

Convolution and transpose convolution are each other's adjoints, so the two
autograd operators below are made of the same three kernels, swapped:

    conv2d            forward: forward       backward: input_grad, weight_grad
    conv_transpose2d  forward: input_grad    backward: forward,    weight_grad

(textbook_transpose_forward and textbook_transpose_backward put them together
for conv_transpose2d, with its bias.) A third operator, conv2d_relu, is conv2d
with ReLU after it: the forward kernels take max(y, 0) when told `relu`, and
the backward ones start with ReLU's backward when given `relu_output`.

Which form runs. Each kernel has a fast twin in fast_conv.py (fast_forward
for textbook_forward, ...) that computes the same numbers from columns built
one cache-sized band at a time, so the whole column matrix never goes to
memory. On NumPy arrays the fast twins run by default; CuPy arrays take the
textbook kernels (one big product suits a GPU). To step through this file's
kernels instead, run the code inside

    with tinyseg.functional.kernels("textbook"):
        y = F.conv2d(x, w)               # conv_forward -> textbook_forward -> im2col

and `kernels.current()` says which form runs. tests/test_fast_conv.py proves
each twin equal to its textbook kernel on drawn shapes.
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional import activation, fast_conv
from tinyseg.functional.validate import (
    check_same_device_and_dtype, check_tensor, non_negative_pair, positive_pair,
)
from tinyseg.im2col import col2im, im2col, output_size
from tinyseg.tensor import Tensor


# ----------------------------------------------------------------- the textbook kernels
def textbook_forward(x, w, stride: tuple, padding: tuple, bias=None, relu: bool = False):
    """y = conv(x, w) + bias: (N, C, H, W), (O, C, kh, kw), (O,) or None -> (N, O, OH, OW).

    relu: max(y, 0) instead (conv2d_relu)."""
    xp = backend.get_array_module(x)
    n, o, kernel = x.shape[0], w.shape[0], w.shape[2:]
    oh, ow = (output_size(x.shape[2 + a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    cols = im2col(x, kernel, stride, padding)                         # (K, N*OH*OW)
    y = w.reshape(o, -1) @ cols                                       # (O, K) @ (K, N*OH*OW)
    if bias is not None:
        y += bias.reshape(o, 1)                                       # the same b at every pixel
    if relu:
        xp.maximum(y, 0, out=y)
    return xp.ascontiguousarray(y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3))   # (N, O, OH, OW)


def textbook_input_grad(gy, w, input_shape: tuple, stride: tuple, padding: tuple):
    """gx = conv's adjoint in x: (N, O, OH, OW), (O, C, kh, kw) -> input_shape (N, C, H, W)."""
    o = w.shape[0]
    gy_rows = gy.transpose(1, 0, 2, 3).reshape(o, -1)                 # (O, N*OH*OW)
    gcols = w.reshape(o, -1).T @ gy_rows                              # (K, O) @ (O, N*OH*OW)
    return col2im(gcols, tuple(input_shape), w.shape[2:], stride, padding)   # (N, C, H, W)


def textbook_weight_grad(gy, x, weight_shape: tuple, stride: tuple, padding: tuple):
    """gw = conv's adjoint in w: (N, O, OH, OW), (N, C, H, W) -> weight_shape (O, C, kh, kw)."""
    o = weight_shape[0]
    cols = im2col(x, weight_shape[2:], stride, padding)               # (K, N*OH*OW)
    gy_rows = gy.transpose(1, 0, 2, 3).reshape(o, -1)                 # (O, N*OH*OW)
    return (gy_rows @ cols.T).reshape(weight_shape)                   # (O, N*OH*OW) @ (N*OH*OW, K)


def textbook_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                      need_weight: bool = True, need_bias: bool = False, relu_output=None):
    """(dL/dx, dL/dw, dL/db) of y = conv(x, w) + b, each None when not needed: the two adjoints above,
    and dL/db, the sum of dL/dy over samples and pixels (b is added at every one).

    relu_output None, or relu(y) of conv2d_relu: gy is then dL/d relu(y), and
    ReLU's backward, dL/dy = gy * (relu(y) > 0), comes first."""
    if relu_output is not None:
        gy = gy * (relu_output > 0)                                   # (N, O, OH, OW)
    gx = textbook_input_grad(gy, w, x.shape, stride, padding) if need_input else None
    gw = textbook_weight_grad(gy, x, w.shape, stride, padding) if need_weight else None
    gb = gy.sum(axis=(0, 2, 3)) if need_bias else None                # (O,)
    return gx, gw, gb


def textbook_transpose_forward(x, w, output_shape: tuple, stride: tuple, padding: tuple, bias=None):
    """y = conv_transpose(x, w) + bias: conv's input gradient for the output gradient x, plus bias.

    x (N, C_in, H, W), w (C_in, C_out, kh, kw) (conv's (O, C, kh, kw) with
    O = C_in), output_shape (N, C_out, OH, OW), bias None or (C_out,).
    """
    y = textbook_input_grad(x, w, output_shape, stride, padding)      # (N, C_out, OH, OW)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def textbook_transpose_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                                need_weight: bool = True, need_bias: bool = False):
    """(dL/dx, dL/dw, dL/db), each None when not needed, of y = conv_transpose(x, w) + b.

    y is conv's input gradient for the output gradient x, so in conv's terms gy
    is the image and x the output gradient: dL/dx = conv(gy, w), and dL/dw is
    conv's weight gradient of the image gy under the output gradient x. dL/db
    is dL/dy summed over samples and pixels.
    """
    image, out_grad = gy, x                                           # conv's roles
    gx = textbook_forward(image, w, stride, padding) if need_input else None
    gw = textbook_weight_grad(out_grad, image, w.shape, stride, padding) if need_weight else None
    gb = gy.sum(axis=(0, 2, 3)) if need_bias else None                # (C_out,)
    return gx, gw, gb


# ----------------------------------------------------------------- which kernels run
FORMS = ("fast", "textbook")
_form = "fast"                  # changed only by `with kernels(...)`, as autograd's no_grad does


class kernels:
    """Context manager: which form of the convolution's kernels runs inside the block.

        import tinyseg.functional as F
        F.kernels.current()                  # "fast": fast_conv.py, the default on the CPU
        with F.kernels("textbook"):          # the kernels above: W @ im2col(x)
            y = F.conv2d(x, w)
        F.kernels.current()                  # "fast" again, after an exception too

    Blocks nest, and one object may be entered again inside itself: each exit
    restores the form that ran before its entry. CuPy arrays take the textbook
    kernels in either form (the bands are sized for a CPU's cache). Only the
    convolutions switch: the fused losses and batch norm have their textbook
    forms beside them as functions of their own (F.cross_entropy_textbook, ...).
    """

    def __init__(self, form: str):
        if form not in FORMS:
            raise ValueError(f"kernels: form must be one of {FORMS}, got {form!r}")
        self.form = form
        self._saved = []                # the form before each entry, innermost last

    def __enter__(self) -> "kernels":
        global _form
        self._saved.append(_form)
        _form = self.form
        return self

    def __exit__(self, *exc_info) -> None:
        global _form
        _form = self._saved.pop()

    @staticmethod
    def current(device: str = "cpu") -> str:
        """The form a convolution on `device` runs now: "fast" or "textbook" (always on "cuda")."""
        return _form if device == "cpu" else "textbook"

    @staticmethod
    def describe(device: str = "cpu") -> str:
        """One line for a reader: which form runs on `device`, and how to step through the other."""
        if kernels.current(device) == "fast":
            return ("convolutions run the fast kernels (tinyseg/functional/fast_conv.py); to step "
                    "through the textbook ones, W @ im2col(x) in tinyseg/functional/conv.py, run "
                    "inside `with tinyseg.functional.kernels(\"textbook\"):`")
        other = ("the fast ones (fast_conv.py) run on the CPU inside "
                 "`with tinyseg.functional.kernels(\"fast\"):`" if device == "cpu"
                 else "the fast ones (fast_conv.py) are for the CPU")
        return (f"convolutions on {device} run the textbook kernels, W @ im2col(x) "
                f"(tinyseg/functional/conv.py); {other}")


def runs_fast(array) -> bool:
    """True where fast_conv.py's kernels run on `array`: see `kernels`."""
    return kernels.current(backend.device_of(array)) == "fast"


def conv_forward(x, w, stride: tuple, padding: tuple, bias=None, relu: bool = False):
    """y = conv(x, w) + bias (None: no bias), max(y, 0) with relu: fast_forward or textbook_forward."""
    if runs_fast(x):
        return fast_conv.fast_forward(x, w, stride, padding, bias, relu)
    return textbook_forward(x, w, stride, padding, bias, relu)


def conv_transpose_forward(x, w, output_shape: tuple, stride: tuple, padding: tuple, bias=None):
    """y = conv_transpose(x, w) + bias: fast_transpose_forward or textbook_transpose_forward."""
    if runs_fast(x):
        return fast_conv.fast_transpose_forward(x, w, output_shape, stride, padding, bias)
    return textbook_transpose_forward(x, w, output_shape, stride, padding, bias)


def conv_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool, need_weight: bool,
                  need_bias: bool, relu_output=None):
    """(dL/dx, dL/dw, dL/db), each None when not needed, of conv (of conv2d_relu, given relu(y)):
    fast_backward or textbook_backward."""
    if runs_fast(gy):
        return fast_conv.fast_backward(gy, x, w, stride, padding, need_input, need_weight, need_bias,
                                       relu_output)
    return textbook_backward(gy, x, w, stride, padding, need_input, need_weight, need_bias, relu_output)


def conv_transpose_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool, need_weight: bool,
                            need_bias: bool):
    """(dL/dx, dL/dw, dL/db), each None when not needed, of conv_transpose: fast or textbook."""
    if runs_fast(gy):
        return fast_conv.fast_transpose_backward(gy, x, w, stride, padding, need_input, need_weight,
                                                 need_bias)
    return textbook_transpose_backward(gy, x, w, stride, padding, need_input, need_weight, need_bias)


# ----------------------------------------------------------------- autograd operators
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """2-d convolution (cross-correlation, as in PyTorch) of an (N, C, H, W) batch.

    weight is (O, C, kh, kw), bias (O,). stride > 1 is a strided convolution, the
    learned alternative to pooling for downsampling. stride and padding are ints
    or (h, w) pairs; kernels need not be square.

    Saved for backward: x (N, C, H, W) and weight (O, C, kh, kw) themselves, no
    im2col columns (C*kh*kw times the image): backward builds them again.
    """
    return convolution("conv2d", x, weight, bias, stride, padding, relu=False)


def conv2d_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """relu(conv2d(x, weight, bias, stride, padding)), the same numbers, as one operator.

    The pair every convolution of the U-Net's blocks makes (models/unet.py).
    Why one operator: on the CPU its fast kernels take max(y, 0) of each band
    while it is in cache, and its backward masks dL/d relu(y) sample by sample
    as the kernels first read it (fast_conv.py, trick 11), so neither of ReLU's
    passes goes over memory on its own (measured: benchmarks/results/kernels.md).

    Saved for backward: x, weight and the output relu(y) (N, O, OH, OW), the
    array ReLU alone would keep.
    """
    return convolution("conv2d_relu", x, weight, bias, stride, padding, relu=True)


def conv2d_relu_textbook(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                         padding=0) -> Tensor:
    """conv2d_relu as it reads: two operators, relu(conv2d(...)), each with its own backward."""
    return activation.relu(conv2d(x, weight, bias, stride, padding))


def convolution(op: str, x: Tensor, weight: Tensor, bias, stride, padding, relu: bool) -> Tensor:
    """conv2d (relu False) or conv2d_relu (relu True): the checks, the forward, the backward rule."""
    stride = positive_pair(stride, "stride", op)
    padding = non_negative_pair(padding, "padding", op)
    check_conv_args(op, x, weight, bias, in_axis=1, out_axis=0)
    h, width = x.shape[2:]
    kh, kw = weight.shape[2:]
    if h + 2 * padding[0] < kh or width + 2 * padding[1] < kw:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * padding[0]}, {width + 2 * padding[1]}) (input shape "
                         f"{x.shape}, padding {padding})")

    y = conv_forward(x.data, weight.data, stride, padding,
                     None if bias is None else bias.data, relu)          # (N, O, OH, OW)
    relu_output = y if relu else None                    # kept for backward only with relu

    def backward(gy):                                                    # gy: (N, O, OH, OW)
        gx, gw, gb = conv_backward(gy, x.data, weight.data, stride, padding, x.requires_grad,
                                   weight.requires_grad, bias is not None and bias.requires_grad,
                                   relu_output)
        return (gx, gw) if bias is None else (gx, gw, gb)               # (N,C,H,W), (O,C,kh,kw), (O,)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(y, parents, backward, op, stride=stride, padding=padding)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0) -> Tensor:
    """Transpose convolution: the adjoint of conv2d, used to upsample.

    x (N, C_in, H, W), weight (C_in, C_out, kh, kw) as in PyTorch. Each input pixel
    paints a kh x kw patch of the output, `stride` pixels apart; overlaps add.
    The output size is

        OH = (H - 1) * stride - 2 * padding + kh + output_padding,

    and output_padding (< stride) picks one of the `stride` output sizes that a
    conv2d with these settings would map back to H.

    Saved for backward: x (N, C_in, H, W) and weight (C_in, C_out, kh, kw); no columns.
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

    y = conv_transpose_forward(x.data, weight.data, out_shape, stride, padding,
                               None if bias is None else bias.data)      # (N, C_out, OH, OW)

    def backward(gy):                                                    # gy: (N, C_out, OH, OW)
        gx, gw, gb = conv_transpose_backward(gy, x.data, weight.data, stride, padding, x.requires_grad,
                                             weight.requires_grad, bias is not None and bias.requires_grad)
        return (gx, gw) if bias is None else (gx, gw, gb)        # (N,C_in,H,W), (C_in,C_out,kh,kw), (C_out,)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(y, parents, backward, op, stride=stride, padding=padding,
                          output_padding=output_padding)


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
