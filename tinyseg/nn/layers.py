"""The small layers: ReLU, MaxPool2d, Flatten, Linear and BatchNorm2d.

Each holds at most a few (C,) or (out, in) tensors and calls one operator of
tinyseg.functional, where the arithmetic and its backward live:

    ReLU()              F.relu          max(x, 0), elementwise, any shape
    MaxPool2d(2)        F.max_pool2d    (N, C, H, W) -> (N, C, H // 2, W // 2)
    Flatten()           Tensor.reshape  (B, C, k, k) -> (B, C*k*k)
    Linear(400, 2)      F.linear        (B, 400) -> (B, 2); weight (2, 400), bias (2,)
    BatchNorm2d(16)     F.batch_norm    (N, 16, H, W) -> same; per-channel normalisation

Why each is there:

- ReLU: without a nonlinearity between them, two convolutions collapse into
  one (a convolution of a convolution is a convolution); ReLU is the cheapest
  nonlinearity that prevents it, and its gradient (1 where x > 0, else 0)
  does not shrink on the positive side.
- MaxPool2d halves the resolution so the next convolutions see a wider
  context for the same cost; it has no parameters. The U-Net can use it
  (down="pool") or a learned stride-2 convolution (down="conv").
- Flatten and Linear end the naive patch classifier:
  features (B, 16, 5, 5) -> Flatten -> (B, 400) -> Linear(400, 2) -> (B, 2) logits.
- BatchNorm2d keeps each channel's activations near zero mean and unit
  variance during training, which lets deeper nets train with larger steps.
"""

from __future__ import annotations

import numpy as np

from tinyseg import functional as F
from tinyseg.functional.validate import non_negative_pair, positive_pair
from tinyseg.nn import init
from tinyseg.nn.conv import check_channels
from tinyseg.nn.module import Module, Parameter
from tinyseg.tensor import Tensor


class ReLU(Module):
    """max(x, 0), elementwise; no parameters."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class MaxPool2d(Module):
    """Max pooling; stride defaults to kernel_size (windows side by side)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        op = "MaxPool2d"
        self.kernel_size = positive_pair(kernel_size, "kernel_size", op)
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride", op)
        self.padding = non_negative_pair(padding, "padding", op)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Linear(Module):
    """(B, in_features) -> (B, out_features). rng: int seed, Generator or None."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = check_channels(in_features, "in_features", "Linear")
        self.out_features = check_channels(out_features, "out_features", "Linear")
        shape = (out_features, in_features)                          # (out, in)
        self.weight = Parameter(init.kaiming_normal(shape, in_features, rng, dtype))
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge axes start_dim..end_dim into one: (B, C, k, k) -> (B, C*k*k) by default.

    The order is NumPy's (row-major): channel first, then row, then column, so
    entry c*k*k + i*k + j of the result is x[:, c, i, j].
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        start = self.start_dim % x.ndim
        end = self.end_dim % x.ndim
        merged = 1
        for size in x.shape[start:end + 1]:
            merged *= size
        return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class BatchNorm2d(Module):
    """(N, num_features, H, W) -> same shape, each channel normalised.

    Owns four (C,) tensors:

        weight, bias                  Parameters, trained (start at 1 and 0: y = xhat)
        running_mean, running_var     buffers: saved in state_dict, moved by to(),
                                      updated by forward() in training mode only

        bn = BatchNorm2d(16)
        bn.train(); y = bn(x)     # batch statistics; running estimates move towards them
        bn.eval();  y = bn(x)     # running estimates; the rest of x's batch does not matter

    Unlike PyTorch there is no num_batches_tracked buffer (it is only used
    when momentum=None, which tinyseg does not offer).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float32):
        super().__init__()
        self.num_features = check_channels(num_features, "num_features", "BatchNorm2d")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum!r}")
        if eps <= 0:
            raise ValueError(f"BatchNorm2d: eps must be positive, got {eps!r}")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = Parameter(np.ones(num_features, dtype=dtype))     # (C,)
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))      # (C,)
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def forward_relu(self, x: Tensor) -> Tensor:
        """relu(self(x)) as one operator, F.batch_norm_relu: what the U-Net's blocks run (models/unet.py)."""
        return F.batch_norm_relu(x, self.running_mean, self.running_var, self.weight, self.bias,
                                 training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
