"""The naive segmenter: classify every pixel by looking at the window around it.

Segmentation asks for one label per pixel. The first idea anyone has is to
reuse an image classifier: cut out the k x k window centred on a pixel, ask
a small classifier what the centre pixel is, and repeat for every pixel.

A 4x4 image and a 3x3 window (k = 3). Pad the image with k // 2 = 1 ring of
zeros so that border pixels have a full window too:

    image        padded (6x6)          window of pixel a     window of pixel f
                 0 0 0 0 0 0
    a b c d      0 a b c d 0           0 0 0                 a b c
    e f g h      0 e f g h 0           0 a b                 e f g
    i j k l      0 i j k l 0           0 e f                 i j k
    m n o p      0 m n o p 0
                 0 0 0 0 0 0

16 pixels, 16 windows, 16 separate runs of the classifier, each on a
(C, 3, 3) patch. Pixel f is in the windows of a, b, c, e, f, g, i, j and k:
nine times its neighbourhood is pushed through the same first convolution,
and nine times the same numbers come out. The cost is
(pixels) x (cost of one window), O(N * H * W * k^2 * ...), with nothing shared.

The patch classifier here is `depth` 3x3 convolutions WITHOUT padding
(each shrinks the window by 2) and ReLU, then one Linear layer on the
flattened k' x k' feature map (k' = k - 2 * depth):

    patch (B, C, k, k) -> conv 3x3 -> (B, width, k-2, k-2) -> ... -> (B, width, k', k')
                       -> flatten (B, width * k' * k') -> Linear -> (B, num_classes)

The way out (`to_fcn()`): a Linear layer over a flattened (width, k', k')
map is exactly a k' x k' convolution evaluated at one position. Rewrite it
as that convolution and run the whole stack on the padded image at once:
the convolutions then compute every window's features in one pass, sharing
all the overlap, and produce the same numbers as this class does one window
at a time. That is a fully convolutional network (FCN).

Training the naive model uses `sample_windows`: random labelled pixels, their
windows and their labels, fed to `forward_patches` with cross-entropy.
"""

from __future__ import annotations

import copy

import numpy as np

from tinyseg import backend
from tinyseg import functional as F
from tinyseg.functional.concat import cat
from tinyseg.im2col import pad_image, window_view
from tinyseg.models.base import SegmentationModel, relu_outputs
from tinyseg.nn import init
from tinyseg.nn.conv import Conv2d
from tinyseg.nn.layers import Flatten, Linear, ReLU
from tinyseg.nn.module import Parameter, Sequential
from tinyseg.tensor import Tensor


class SlidingWindow(SegmentationModel):
    """Per-pixel patch classifier: forward (N, C, H, W) -> (N, num_classes, H, W) logits.

    window: k, the odd side of the window centred on each pixel.
    width: channels of every convolution. depth: how many 3x3 convolutions.
    seed: the initial weights are a function of it. chunk_size: windows per
    batch in forward() (bounds the memory, not the work). windows_per_image:
    how many random windows each image of a batch gives in training_loss().
    Like chunk_size it changes how the model is run, not its weights, so it is
    left out of `config` (which builds the same architecture, and its PyTorch
    twin in benchmarks/); train.py passes it from --windows-per-image.
    """

    name = "naive"
    chunk_size = 4096

    def __init__(self, in_channels: int = 3, num_classes: int = 2, window: int = 15, width: int = 16,
                 depth: int = 2, seed: int = 0, dtype="float32", windows_per_image: int = 256):
        super().__init__(in_channels, num_classes)
        if window < 1 or window % 2 == 0:
            raise ValueError(f"SlidingWindow: window must be a positive odd int, got {window!r}")
        if depth < 0 or window - 2 * depth < 1:
            raise ValueError(f"SlidingWindow: depth {depth} 3x3 convolutions do not fit in a "
                             f"{window}x{window} window (need window - 2 * depth >= 1)")
        dtype = np.dtype(dtype)
        rng = init.make_rng(seed)
        if windows_per_image < 1:
            raise ValueError(f"SlidingWindow: windows_per_image must be >= 1, got {windows_per_image!r}")
        self.window, self.width, self.depth = window, width, depth
        self.windows_per_image = windows_per_image
        layers, channels = [], in_channels
        for _ in range(depth):                                   # each: k -> k - 2
            layers += [Conv2d(channels, width, 3, dtype=dtype, rng=rng), ReLU()]
            channels = width
        self.features = Sequential(*layers)
        self.feature_size = window - 2 * depth                   # k'
        self.flatten = Flatten()
        self.classifier = Linear(channels * self.feature_size ** 2, num_classes, dtype=dtype, rng=rng)
        self.record_config(in_channels=in_channels, num_classes=num_classes, window=window,
                           width=width, depth=depth, seed=seed, dtype=dtype.name)

    def forward_patches(self, patches: Tensor) -> Tensor:
        """patches (B, C, k, k) -> (B, num_classes): logits for each window's centre pixel."""
        k = self.window
        if patches.ndim != 4 or patches.shape[1:] != (self.in_channels, k, k):
            raise ValueError(f"SlidingWindow.forward_patches: patches must be (B, {self.in_channels}, "
                             f"{k}, {k}), got shape {patches.shape}")
        features = self.features(patches)                        # (B, width, k', k')
        return self.classifier(self.flatten(features))           # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> (N, num_classes, H, W), one window at a time (in chunks).

        Gradients reach the weights (through every chunk) but not the image x.
        """
        self.check_input(x)
        n, _, h, w = x.shape
        xp = x.xp
        by_pixel = pixel_windows(x.data, self.window)            # (N, H, W, C, k, k) view
        chunks = []
        for start in range(0, n * h * w, self.chunk_size):       # a loop over chunks of pixels
            index = xp.arange(start, min(start + self.chunk_size, n * h * w))
            image, row, col = xp.unravel_index(index, (n, h, w))
            patches = Tensor(by_pixel[image, row, col])          # (B, C, k, k): copies B windows
            chunks.append(self.forward_patches(patches))         # (B, num_classes)
        logits = cat(chunks, axis=0)                             # (N*H*W, num_classes)
        return logits.reshape(n, h, w, self.num_classes).transpose(0, 3, 1, 2)   # (N, classes, H, W)

    def training_loss(self, images: Tensor, masks, criterion, rng) -> Tensor:
        """The loss of a batch, learned the sliding window's way: from random windows.

        Draws windows_per_image labelled pixels per image (from rng, never an
        ignored pixel), cuts out their windows and scores each centre label:
        images (B, C, H, W) -> patches (B * windows_per_image, C, k, k)
        -> logits (B * windows_per_image, classes) -> criterion(logits, labels).
        """
        count = len(images) * self.windows_per_image
        patches, labels = self.sample_windows(images, masks, count, rng)   # (count, C, k, k), (count,)
        return criterion(self.forward_patches(Tensor(patches)), labels)

    def stages(self) -> list[str]:
        """Each 3x3 layer's output after its ReLU, then the classifier (inspect runs to_fcn()'s)."""
        return relu_outputs(self.features, "features") + ["classifier"]

    def inference_model(self) -> "SlidingWindowFCN":
        """The to_fcn() rewrite: the same labels as forward(), in one convolutional pass."""
        return self.to_fcn()

    def sample_windows(self, images, masks, count: int, rng, ignore_index: int = 255):
        """sample_windows(images, masks, count, rng, window=self.window); see that function."""
        return sample_windows(images, masks, count, rng, window=self.window, ignore_index=ignore_index)

    def to_fcn(self) -> "SlidingWindowFCN":
        """The same weights as a fully convolutional network: same logits, far faster."""
        return SlidingWindowFCN(self)

    def extra_repr(self) -> str:
        return f"window={self.window}"


class SlidingWindowFCN(SegmentationModel):
    """A SlidingWindow rewritten as convolutions: forward (N, C, H, W) -> (N, classes, H, W).

    Made by SlidingWindow.to_fcn(); holds copies of its weights:

        pad k // 2       (N, C, H, W)       -> (N, C, H + k - 1, W + k - 1)
        features         the same unpadded 3x3 convolutions, shrinking by 2 each
                         -> (N, width, H + k' - 1, W + k' - 1), where k' = k - 2 * depth
        head             Linear(width * k' * k', classes) as a k' x k' convolution:
                         weight (classes, width * k' * k') -> (classes, width, k', k')
                         -> (N, classes, H, W)

    The reshape of the Linear weight is valid because Flatten orders a
    (width, k', k') map channel-major, exactly like a conv weight's last three axes.
    Its `config` is only {"name": "naive as FCN"}: it is made, never built by
    build_model(); save the SlidingWindow it came from instead.
    """

    name = "naive as FCN"

    def __init__(self, model: SlidingWindow):
        super().__init__(model.in_channels, model.num_classes)
        self.window = model.window
        self.features = copy.deepcopy(model.features)            # the same 3x3 convolutions
        linear = model.classifier
        k_prime = model.feature_size
        channels = linear.in_features // (k_prime * k_prime)
        head = Conv2d(channels, model.num_classes, k_prime, dtype=linear.weight.dtype)
        head.weight = Parameter(linear.weight.data.reshape(model.num_classes, channels,
                                                           k_prime, k_prime).copy())
        head.bias = Parameter(linear.bias.data.copy())
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        r = self.window // 2
        padded = F.pad(x, (r, r, r, r))                          # (N, C, H + 2r, W + 2r)
        return self.head(self.features(padded))                  # (N, classes, H, W)

    def stages(self) -> list[str]:
        """Each unpadded 3x3 layer's output after its ReLU, then the head (the window classifier)."""
        return relu_outputs(self.features, "features") + ["head"]

    def extra_repr(self) -> str:
        return f"window={self.window}"


def pixel_windows(images, window: int):
    """(N, C, H, W) array -> (N, H, W, C, k, k) view: the zero-padded window of every pixel.

    Built on im2col's window view; nothing is copied but the padded image.
    """
    r = window // 2
    padded = pad_image(images, (r, r))                           # (N, C, H + 2r, W + 2r)
    windows = window_view(padded, (window, window), (1, 1))      # (N, C, k, k, H, W)
    return windows.transpose(0, 4, 5, 1, 2, 3)                   # (N, H, W, C, k, k)


def sample_windows(images, masks, count: int, rng, window: int, ignore_index: int = 255):
    """Random labelled pixels of a batch: their k x k windows and their labels.

    images (N, C, H, W) float array (or Tensor), masks (N, H, W) integer labels.
    Pixels labelled `ignore_index` are never picked; the rest are drawn
    uniformly, with replacement. rng: int seed, numpy Generator or None.
    Returns (patches (count, C, k, k), labels (count,) int64), arrays on the
    images' device; windows are zero-padded at the border, as forward() does.
    """
    images = images.data if isinstance(images, Tensor) else images
    masks = masks.data if isinstance(masks, Tensor) else masks
    if images.ndim != 4 or tuple(masks.shape) != (images.shape[0],) + tuple(images.shape[2:]):
        raise ValueError(f"sample_windows: images must be (N, C, H, W) and masks (N, H, W), got "
                         f"shapes {tuple(images.shape)} and {tuple(masks.shape)}")
    host_masks = backend.to_numpy(masks)
    labelled = np.flatnonzero(host_masks != ignore_index)       # flat indices of usable pixels
    if labelled.size == 0:
        raise ValueError(f"sample_windows: every pixel is labelled ignore_index={ignore_index}")
    chosen = labelled[init.make_rng(rng).integers(0, labelled.size, size=count)]
    image, row, col = np.unravel_index(chosen, host_masks.shape)
    device = backend.device_of(images)
    image, row, col = (backend.to_device(a, device) for a in (image, row, col))
    patches = pixel_windows(images, window)[image, row, col]    # (count, C, k, k)
    labels = masks[image, row, col].astype(np.int64)             # (count,)
    return patches, labels

