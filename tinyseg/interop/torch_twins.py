"""PyTorch twins of tinyseg's three models: the same layers, the same names, the same weights.

Each class here mirrors one tinyseg model layer for layer and names its
submodules the same way, so the two state_dicts have the same keys and shapes:

    tinyseg                                PyTorch twin
    SlidingWindow  features.0.weight       TorchSlidingWindow  features.0.weight
    FCN            head.weight             TorchFCN            head.weight
    UNet           encoder.0.0.weight      TorchUNet           encoder.0.0.weight

(PyTorch's BatchNorm2d keeps one more buffer, num_batches_tracked, that
tinyseg does not; see torch_weights.py.)

    module = build_torch_model(model.config)   # the twin of a tinyseg model, fresh weights
    module.load_state_dict(torch.load("model.pt")["state_dict"])

This file needs only PyTorch, not the rest of tinyseg: copy it next to a
deployment and it builds the module a `tinyseg export --format torch` file
loads into. torch_weights.py copies the weights across (to_torch,
from_torch); the benchmarks use the twins to time PyTorch on the same network.
"""

from __future__ import annotations

try:
    import torch
except ImportError as error:                                     # torch is an optional extra
    raise ImportError("the PyTorch twins need PyTorch: pip install 'tinyseg[torch]'") from error
from torch import nn
from torch.nn import functional as tF


class TorchSlidingWindow(nn.Module):
    """tinyseg.models.SlidingWindow: a patch classifier run on every pixel's window, in chunks."""

    chunk_size = 4096

    def __init__(self, in_channels=3, num_classes=2, window=15, width=16, depth=2):
        super().__init__()
        self.window, self.num_classes = window, num_classes
        layers, channels = [], in_channels
        for _ in range(depth):                                   # each: k -> k - 2
            layers += [nn.Conv2d(channels, width, 3), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        feature_size = window - 2 * depth                        # k'
        self.classifier = nn.Linear(channels * feature_size ** 2, num_classes)

    def forward_patches(self, patches):
        """(B, C, k, k) -> (B, num_classes)."""
        return self.classifier(torch.flatten(self.features(patches), 1))

    def forward(self, x):
        """(N, C, H, W) -> (N, num_classes, H, W), one chunk of windows at a time, like tinyseg."""
        n, c, h, w = x.shape
        k, r = self.window, self.window // 2
        padded = tF.pad(x, (r, r, r, r))                         # (N, C, H + 2r, W + 2r)
        windows = padded.unfold(2, k, 1).unfold(3, k, 1)         # (N, C, H, W, k, k) view
        by_pixel = windows.permute(0, 2, 3, 1, 4, 5)             # (N, H, W, C, k, k) view
        chunks = []
        for start in range(0, n * h * w, self.chunk_size):
            index = torch.arange(start, min(start + self.chunk_size, n * h * w), device=x.device)
            image, row, col = torch.unravel_index(index, (n, h, w))
            chunks.append(self.forward_patches(by_pixel[image, row, col]))   # copies B windows
        logits = torch.cat(chunks, dim=0)                        # (N*H*W, num_classes)
        return logits.reshape(n, h, w, self.num_classes).permute(0, 3, 1, 2)


class TorchFCN(nn.Module):
    """tinyseg.models.FCN: depth x (3x3 conv, padding 1, ReLU), then a 1x1 conv."""

    def __init__(self, in_channels=3, num_classes=2, width=32, depth=4):
        super().__init__()
        layers, channels = [], in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(self.features(x))


def double_conv(in_channels, out_channels, batch_norm):
    """[in -> out -> out], laid out as tinyseg's double_conv so the indices match."""
    layers = []
    for c_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TorchUNet(nn.Module):
    """tinyseg.models.UNet: encoder, bottleneck, decoder with skip connections, 1x1 head."""

    def __init__(self, in_channels=1, num_classes=2, base_channels=64, depth=4, down="pool",
                 batch_norm=False):
        super().__init__()
        self.depth = depth
        widths = [base_channels * 2 ** level for level in range(depth + 1)]
        encoder, downsample, c_in = [], [], in_channels
        for level in range(depth):
            encoder.append(double_conv(c_in, widths[level], batch_norm))
            downsample.append(nn.MaxPool2d(2) if down == "pool"
                              else nn.Conv2d(widths[level], widths[level], 3, stride=2, padding=1))
            c_in = widths[level]
        self.encoder = nn.ModuleList(encoder)
        self.downsample = nn.ModuleList(downsample)
        self.bottleneck = double_conv(c_in, widths[depth], batch_norm)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                      for level in reversed(range(depth)))
        self.decoder = nn.ModuleList(double_conv(2 * widths[level], widths[level], batch_norm)
                                     for level in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            x = tF.pad(x, (0, pad_w, 0, pad_h))                  # bottom and right, as tinyseg
        skips = []
        for block, down in zip(self.encoder, self.downsample):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.upsample, self.decoder, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)[:, :, :h, :w]


TWINS = {"naive": TorchSlidingWindow, "fcn": TorchFCN, "unet": TorchUNet}


def build_torch_model(config: dict) -> nn.Module:
    """The twin of the tinyseg model that `config` describes (a model's .config), in its dtype.

    config: {"name": "naive" | "fcn" | "unet", the constructor's arguments,
    "seed": ..., "dtype": "float32" | "float64"}, as saved in a checkpoint
    and in a `tinyseg export --format torch` file. The seed is not used (load
    the weights); the module keeps the config as `.config`.
    """
    arguments = dict(config)
    name = arguments.pop("name", None)
    if name not in TWINS:
        raise ValueError(f"build_torch_model: config 'name' must be one of {sorted(TWINS)}, "
                         f"got {name!r}")
    arguments.pop("seed", None)                                  # weights are loaded, not drawn
    dtype = getattr(torch, arguments.pop("dtype", "float32"))    # "float32" -> torch.float32
    try:
        module = TWINS[name](**arguments)
    except TypeError as error:
        raise ValueError(f"build_torch_model: bad arguments for {name!r} in config {config!r}: "
                         f"{error}") from None
    module.config = dict(config)
    return module.to(dtype)
