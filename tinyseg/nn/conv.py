"""Convolution layers: Conv2d and ConvTranspose2d, holding their weights.

The arithmetic lives in tinyseg.functional.conv (im2col and one matrix
multiply); these classes only own the Parameters and remember the settings.

    conv = Conv2d(3, 16, kernel_size=3, padding=1)      weight (16, 3, 3, 3), bias (16,)
    conv(x)                                             (N, 3, H, W) -> (N, 16, H, W)

    up = ConvTranspose2d(16, 8, kernel_size=2, stride=2)   weight (16, 8, 2, 2), bias (8,)
    up(x)                                               (N, 16, H, W) -> (N, 8, 2H, 2W)

Output sizes, per spatial axis (k kernel, s stride, p padding):

    Conv2d:           OH = (H + 2p - k) // s + 1
    ConvTranspose2d:  OH = (H - 1) * s - 2p + k + output_padding

Weights are He-initialised (see tinyseg.nn.init), biases start at zero.
"""

from __future__ import annotations

import numpy as np

from tinyseg import functional as F
from tinyseg.functional.validate import non_negative_pair, positive_pair
from tinyseg.nn import init
from tinyseg.nn.module import Module, Parameter
from tinyseg.tensor import Tensor


class Conv2d(Module):
    """2-d convolution: (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    kernel_size, stride and padding are ints or (h, w) pairs. rng: an int
    seed, a numpy Generator or None, for the initial weights.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        op = "Conv2d"
        self.in_channels = check_channels(in_channels, "in_channels", op)
        self.out_channels = check_channels(out_channels, "out_channels", op)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", op)
        self.stride = positive_pair(stride, "stride", op)
        self.padding = non_negative_pair(padding, "padding", op)
        shape = (out_channels, in_channels) + self.kernel_size       # (O, C, kh, kw)
        self.weight = Parameter(init.kaiming_normal(shape, init.conv_fan_in(shape), rng, dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def forward_relu(self, x: Tensor) -> Tensor:
        """relu(self(x)) as one operator, F.conv2d_relu: what the U-Net's blocks run (models/unet.py)."""
        return F.conv2d_relu(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class ConvTranspose2d(Module):
    """Transpose convolution, the learned upsampling: (N, in, H, W) -> (N, out, OH, OW).

    The weight is (in_channels, out_channels, kh, kw), as in PyTorch: each input
    pixel's in_channels values paint one kh x kw patch of out_channels values.
    With kernel_size=2, stride=2 the patches tile the output exactly and the
    image doubles in size, which is how the U-Net climbs back up.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        op = "ConvTranspose2d"
        self.in_channels = check_channels(in_channels, "in_channels", op)
        self.out_channels = check_channels(out_channels, "out_channels", op)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", op)
        self.stride = positive_pair(stride, "stride", op)
        self.padding = non_negative_pair(padding, "padding", op)
        self.output_padding = non_negative_pair(output_padding, "output_padding", op)
        if self.output_padding[0] >= self.stride[0] or self.output_padding[1] >= self.stride[1]:
            raise ValueError(f"{op}: output_padding {self.output_padding} must be smaller than "
                             f"stride {self.stride} in each dimension")
        shape = (in_channels, out_channels) + self.kernel_size       # (C_in, C_out, kh, kw)
        fan_in = init.conv_transpose_fan_in(shape, self.stride)
        self.weight = Parameter(init.kaiming_normal(shape, fan_in, rng, dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, bias={self.bias is not None}")


def check_channels(value, name: str, op: str) -> int:
    """A channel count must be a positive int."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)
