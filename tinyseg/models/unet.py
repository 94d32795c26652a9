"""U-Net (Ronneberger, Fischer and Brox, 2015): see far, then draw sharp edges.

The FCN (fcn.py) sees only a few pixels around each pixel, because every
layer runs at full resolution. The U-Net halves the resolution level by
level (the encoder, going down), so that a 3x3 convolution at level 4 spans
48x48 input pixels, then climbs back up (the decoder), and at each level
concatenates the encoder's full-detail features (the skip connections) so
the labels come out with sharp boundaries.

The classic configuration, UNet(in_channels=1, num_classes=2, base_channels=64,
depth=4), on a 256 x 256 image; [a -> b -> c] is two 3x3 convolutions
(padding 1, each followed by ReLU, and by BatchNorm first if batch_norm=True):

 level  size      encoder (going down)                         decoder (coming up)

   0    256x256   [1 -> 64 -> 64] ------------- cat -------------> [128 -> 64 -> 64] -> 1x1 -> 2
                          | pool                                        ^ up 128 -> 64
   1    128x128     [64 -> 128 -> 128] -------- cat --------> [256 -> 128 -> 128]
                              | pool                                ^ up 256 -> 128
   2     64x64        [128 -> 256 -> 256] ----- cat -----> [512 -> 256 -> 256]
                                  | pool                        ^ up 512 -> 256
   3     32x32          [256 -> 512 -> 512] -- cat --> [1024 -> 512 -> 512]
                                      | pool            ^ up 1024 -> 512
   4     16x16              [512 -> 1024 -> 1024]   (the bottleneck)

    pool:  2x2 max pooling (down="pool"), or a 3x3 stride-2 convolution that
           keeps the channels (down="conv"), learned downsampling;
    up:    2x2 stride-2 transpose convolution, doubling the size and halving
           the channels;
    cat:   tinyseg.cat([skip, up(x)], axis=1): the encoder's features beside
           the upsampled ones, which is why each decoder block takes twice its
           output channels;
    1x1:   a per-pixel Linear layer from base_channels to num_classes.

Level i has base_channels * 2**i channels. With biases and no batch norm the
classic layout has exactly 31,030,658 parameters (the paper's unpadded
convolutions change the sizes at each level, not the count).

Sizes. Every level halves the image, so H and W must be multiples of
2**depth for the shapes to line up on the way back. Other sizes are padded
with zeros at the bottom and right up to the next multiple, and the output
is cropped back: (N, C, 37, 45) with depth 3 runs at 40 x 48 and returns
(N, num_classes, 37, 45) (F.pad_to_multiple and F.crop_like, which say so in
the recorded graph, so an exported ONNX file pads and crops at every size).
"""

from __future__ import annotations

import numpy as np

from tinyseg import functional as F
from tinyseg import recording
from tinyseg.functional.concat import cat
from tinyseg.models.base import SegmentationModel
from tinyseg.nn import init
from tinyseg.nn.conv import Conv2d, ConvTranspose2d
from tinyseg.nn.layers import BatchNorm2d, MaxPool2d, ReLU
from tinyseg.nn.module import Sequential
from tinyseg.tensor import Tensor

DOWNSAMPLING = ("pool", "conv")


def double_conv(in_channels: int, out_channels: int, batch_norm: bool, dtype, rng) -> "DoubleConv":
    """[in -> out -> out]: (3x3 conv, padding 1, [BatchNorm], ReLU) twice; keeps H and W.

    With batch norm the convolutions have no bias: BatchNorm subtracts the
    mean right after, which would cancel it, and adds its own bias.
    """
    layers = []
    for c_in in (in_channels, out_channels):
        layers.append(Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm, dtype=dtype, rng=rng))
        if batch_norm:
            layers.append(BatchNorm2d(out_channels, dtype=dtype))
        layers.append(ReLU())
    return DoubleConv(*layers)


class DoubleConv(Sequential):
    """A U-Net block: its layers run one after the other, each one that a ReLU follows fused with it.

    The layers are a Sequential's (children "0", "1", ...: the state_dict keys
    of PyTorch's twin). A Conv2d or a BatchNorm2d followed by a ReLU runs as
    one operator, F.conv2d_relu or F.batch_norm_relu (their forward_relu): the
    same numbers, without ReLU's own passes over memory (fast_conv.py's trick
    11; normalization.py). While a recording is on (inspect, export, graph,
    complexity), every layer runs on its own, so that each one's operation and
    output are seen as written.
    """

    def forward(self, x):
        if recording.is_recording():
            return super().forward(x)
        layers = list(self)
        i = 0
        while i < len(layers):
            layer, following = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, (Conv2d, BatchNorm2d)) and isinstance(following, ReLU):
                x = layer.forward_relu(x)                        # relu(layer(x)), one operator
                i += 2
            else:
                x = layer(x)
                i += 1
        return x


class UNet(SegmentationModel):
    """U-Net: forward (N, in_channels, H, W) -> (N, num_classes, H, W) logits, any H, W.

    base_channels: channels at level 0 (doubling at each level down).
    depth: number of downsamplings (the bottleneck is at H / 2**depth).
    down: "pool" (2x2 max pooling) or "conv" (3x3 stride-2 convolution).
    batch_norm: BatchNorm2d between each convolution and its ReLU.
    seed: the initial weights are a function of it.
    """

    name = "unet"

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64,
                 depth: int = 4, down: str = "pool", batch_norm: bool = False, seed: int = 0,
                 dtype="float32"):
        super().__init__(in_channels, num_classes)
        if depth < 0:
            raise ValueError(f"UNet: depth must be >= 0, got {depth!r}")
        if down not in DOWNSAMPLING:
            raise ValueError(f"UNet: down must be one of {DOWNSAMPLING}, got {down!r}")
        dtype = np.dtype(dtype)
        rng = init.make_rng(seed)
        self.depth = depth
        widths = [base_channels * 2 ** level for level in range(depth + 1)]   # channels per level

        encoder, downsample, c_in = [], [], in_channels
        for level in range(depth):                               # going down: levels 0 .. depth-1
            encoder.append(double_conv(c_in, widths[level], batch_norm, dtype, rng))
            if down == "pool":
                downsample.append(MaxPool2d(2))
            else:
                downsample.append(Conv2d(widths[level], widths[level], 3, stride=2, padding=1,
                                         dtype=dtype, rng=rng))
            c_in = widths[level]
        self.encoder = encoder
        self.downsample = downsample
        self.bottleneck = double_conv(c_in, widths[depth], batch_norm, dtype, rng)

        upsample, decoder = [], []
        for level in reversed(range(depth)):                     # coming up: levels depth-1 .. 0
            upsample.append(ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2,
                                            dtype=dtype, rng=rng))
            decoder.append(double_conv(2 * widths[level], widths[level], batch_norm, dtype, rng))
        self.upsample = upsample
        self.decoder = decoder
        self.head = Conv2d(widths[0], num_classes, 1, dtype=dtype, rng=rng)
        self.record_config(in_channels=in_channels, num_classes=num_classes,
                           base_channels=base_channels, depth=depth, down=down,
                           batch_norm=batch_norm, seed=seed, dtype=dtype.name)

    def stages(self) -> list[str]:
        """Each level's block going down, the bottleneck, each level's block coming up, the head.

        depth 3: encoder.0 encoder.1 encoder.2 bottleneck decoder.0 decoder.1 decoder.2 head
        (decoder.0 is the deepest level's block: the decoder runs from the bottom up).
        """
        return ([f"encoder.{i}" for i in range(self.depth)] + ["bottleneck"]
                + [f"decoder.{i}" for i in range(self.depth)] + ["head"])

    def smallest_normalized_map(self, height: int, width: int) -> int | None:
        """Pixels per image at the bottleneck, the smallest map batch norm sees: ceil(H / 2**depth) x ..."""
        if not any(isinstance(module, BatchNorm2d) for module in self.modules()):
            return None
        multiple = 2 ** self.depth
        return -(-height // multiple) * -(-width // multiple)

    def forward(self, image: Tensor) -> Tensor:
        self.check_input(image)
        x = F.pad_to_multiple(image, 2 ** self.depth)            # (N, C, H', W'), H' = H + (-H % 2**depth)

        skips = []
        for block, down in zip(self.encoder, self.downsample):
            x = block(x)                                         # (N, c, h, w)
            skips.append(x)
            x = down(x)                                          # (N, c, h/2, w/2)
        x = self.bottleneck(x)                                   # (N, base * 2**depth, H/2**depth, W/2**depth)
        for up, block, skip in zip(self.upsample, self.decoder, reversed(skips)):
            x = up(x)                                            # (N, 2c, h/2, w/2) -> (N, c, h, w)
            x = block(cat([skip, x], axis=1))                    # (N, 2c, h, w) -> (N, c, h, w)
        logits = self.head(x)                                    # (N, num_classes, H', W')
        return F.crop_like(logits, image)                        # back to (N, num_classes, H, W)
