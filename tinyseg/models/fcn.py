"""A fully convolutional network at full resolution: the sliding window, done right.

SlidingWindow (sliding_window.py) runs a classifier on every pixel's window
separately. Written with padded convolutions instead, the same kind of
network labels every pixel in one pass, sharing all the work that
overlapping windows have in common:

    x (N, C, H, W)
      -> conv 3x3, padding 1, ReLU     (N, width, H, W)     \
      -> conv 3x3, padding 1, ReLU     (N, width, H, W)      |  `depth` of them
      -> ...                                                 /
      -> conv 1x1                      (N, num_classes, H, W)   logits per pixel

Padding 1 keeps the size, so the output is aligned with the input pixel for
pixel. Each output pixel sees a (2 * depth + 1)^2 neighbourhood of the
input (its receptive field): 9x9 for depth 4. That is this model's weak
point: a pixel's label can only depend on what is within depth pixels of it,
and making that wider costs a layer per pixel of reach, all at full
resolution. The U-Net (unet.py) widens its view by downsampling instead.

The final 1x1 convolution is a Linear layer (width -> num_classes) applied
at every pixel.
"""

from __future__ import annotations

import numpy as np

from tinyseg.models.base import SegmentationModel, relu_outputs
from tinyseg.nn import init
from tinyseg.nn.conv import Conv2d
from tinyseg.nn.layers import ReLU
from tinyseg.nn.module import Sequential
from tinyseg.tensor import Tensor


class FCN(SegmentationModel):
    """depth x (3x3 conv, ReLU) at full resolution, then a 1x1 conv to num_classes.

    forward: (N, in_channels, H, W) -> (N, num_classes, H, W) logits, any H, W.
    seed: the initial weights are a function of it.
    """

    name = "fcn"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 32, depth: int = 4,
                 seed: int = 0, dtype="float32"):
        super().__init__(in_channels, num_classes)
        if depth < 1:
            raise ValueError(f"FCN: depth must be >= 1, got {depth!r}")
        dtype = np.dtype(dtype)
        rng = init.make_rng(seed)
        layers, channels = [], in_channels
        for _ in range(depth):
            layers += [Conv2d(channels, width, 3, padding=1, dtype=dtype, rng=rng), ReLU()]
            channels = width
        self.features = Sequential(*layers)                         # (N, width, H, W)
        self.head = Conv2d(width, num_classes, 1, dtype=dtype, rng=rng)   # (N, num_classes, H, W)
        self.record_config(in_channels=in_channels, num_classes=num_classes, width=width,
                           depth=depth, seed=seed, dtype=dtype.name)

    def stages(self) -> list[str]:
        """Each layer's output after its ReLU (features.1, features.3, ...), then the head."""
        return relu_outputs(self.features, "features") + ["head"]

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.head(self.features(x))
