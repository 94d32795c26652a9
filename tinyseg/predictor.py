"""The one way tinyseg runs a trained model on images: a Predictor.

    predictor = Predictor(model, normalization=meta["normalization"], device="cpu")
    labels = predictor.labels(image)              # (H, W) int64, for a (C, H, W) image as read
    probs = predictor.probabilities(image)        # (K, H, W) float32, summing to 1 at each pixel
    probs = predictor.probabilities(image, tta="flip")   # the mean over the image's 4 flips
    for rows, cols, logits in predictor.logits_by_tile(image): ...   # (K, h, w) pieces

Validation after every epoch, `tinyseg eval`, the tour's pictures and
`tinyseg predict` all label images through a Predictor, so they agree
by construction: the same normalisation (the training images' per-channel
mean and std, stored in the checkpoint), the same device, the same fast form
of the model (`model.inference_model()`: the sliding window's to_fcn()),
and the same tiling.

Tiling bounds the memory whatever the image size. An image no larger than
`tile_size` a side runs in one pass; a larger one runs tile by tile with
margins as wide as the model's reach, which gives the whole-image logits
exactly (tiling.py explains why). So a folder of 3000 x 2000 photographs
is scored in the memory of one 624 x 624 tile, not of one photograph
(measured: benchmarks/results/tiling.md).

`scale` is the --scale the model was trained with: images were resized by
it when read, so an image given at its own size is resized by it first, and
the labels are resized back (nearest) to the image's size (`labels_at_scale`).
Datasets read with the same scale (validation, eval) are labelled as they are.

Test-time augmentation (`tta="flip"`, predict --tta flip): the model also
labels the image flipped left-right, up-down and both ways; each result is
flipped back, and the four probability maps are averaged (`flip_averaged`).
Labels are then the argmax of the average. It costs four passes.
"""

from __future__ import annotations

import numpy as np

from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.complexity.receptive_fields import downsampling_period
from tinyseg.data.normalize import normalized
from tinyseg.data.images import resize_image, resize_mask, scaled_size
from tinyseg.tensor import Tensor
from tinyseg.tiling import TILE_SIZE, needs_tiles, pad_to_period, tile_boxes, tile_margin

TTA_CHOICES = ("none", "flip")
FLIP_AXES = ((), (2,), (1,), (1, 2))     # of a (C, H, W) image: none, left-right, up-down, both


class Predictor:
    """A model with what it needs to label raw images: normalisation, device, tiling, scale.

    model: a SegmentationModel (its inference_model() runs, in eval mode).
    normalization: {"mean": [...], "std": [...]}, one per input channel, or None.
    device: "cpu" or "cuda". tile_size: the side of a tile's core, in pixels.
    scale: the factor images were resized by in training (labels_at_scale).
    """

    def __init__(self, model, normalization: dict | None = None, device: str = "cpu",
                 tile_size: int = TILE_SIZE, scale: float = 1.0):
        if int(tile_size) != tile_size or tile_size < 1:
            raise ValueError(f"--tile-size must be a whole number >= 1, got {tile_size!r}")
        channels = model.in_channels
        if normalization is not None and len(normalization["mean"]) != channels:
            raise ValueError(f"the normalization has {len(normalization['mean'])} channel(s) but "
                             f"the model takes {channels}")
        self.model, self.normalization, self.device = model, normalization, device
        self.tile_size, self.scale = int(tile_size), float(scale)
        self.margin = None                          # measured once, when an image needs tiles

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", tile_size: int = TILE_SIZE):
        """(Predictor, meta) of a checkpoint: its model, normalisation and training --scale."""
        from tinyseg.run_files import load_model
        model, meta = load_model(path, device)
        scale = meta.get("train_config", {}).get("scale", 1.0)
        return cls(model, meta.get("normalization"), device, tile_size, scale), meta

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    # ----------------------------------------------------------------- logits
    def network(self):
        """The module that computes the logits: the model's fast form, in eval mode."""
        self.model.eval()
        return self.model.inference_model().eval()

    def normalized(self, images: np.ndarray) -> np.ndarray:
        """(..., C, H, W) images scaled by the training set's per-channel mean and std."""
        return normalized(images, self.normalization)

    def logits_of_batch(self, images: np.ndarray, net=None):
        """(B, K, H, W) logits, on the device, of a (B, C, H, W) batch as read, in ONE pass."""
        return self.run(net or self.network(), self.normalized(images))

    def run(self, net, x: np.ndarray):
        """net's logits (B, K, h, w), on the device, of normalised images x (B, C, h, w)."""
        with no_grad():
            return net(Tensor(x, device=self.device)).data

    def logits_by_tile(self, image: np.ndarray, net=None):
        """Yield (rows, cols, logits (K, h, w) on the device) covering a (C, H, W) image once.

        A small image is one piece, the whole image. A larger one comes in
        tile cores: slices of the image, each with the logits that a
        whole-image pass gives there. The image is normalised first and then
        padded with zeros to the model's period, exactly as the model pads
        its (normalised) input in a whole-image pass.
        """
        net = net or self.network()
        height, width = image.shape[1:]
        x = self.normalized(image)                                           # (C, H, W)
        if not needs_tiles(image.shape, self.tile_size):
            yield slice(0, height), slice(0, width), self.run(net, x[None])[0]
            return
        if self.margin is None:
            self.margin = tile_margin(net)
        period = downsampling_period(net)
        x = pad_to_period(x, period)                                         # (C, H', W')
        for tile, core in tile_boxes(x.shape[1:], period, self.margin, self.tile_size):
            rows, cols = clipped(core[0], height), clipped(core[1], width)   # in the image
            if rows.stop <= rows.start or cols.stop <= cols.start:
                continue                                                     # only padding
            piece = np.ascontiguousarray(x[None, :, tile[0], tile[1]])       # (1, C, h, w)
            logits = self.run(net, piece)[0]                                 # (K, h, w)
            top, left = rows.start - tile[0].start, cols.start - tile[1].start
            yield rows, cols, logits[:, top:top + rows.stop - rows.start,
                                     left:left + cols.stop - cols.start]

    # ----------------------------------------------------------------- what callers ask for
    def labels(self, image: np.ndarray, tta: str = "none") -> np.ndarray:
        """(H, W) int64 labels of a (C, H, W) image: the highest-scoring class at each pixel.

        tta="flip": the most probable class of the flip-averaged probabilities.
        """
        if check_tta(tta) != "none":
            return self.probabilities(image, tta).argmax(axis=0)
        out = np.empty(image.shape[1:], dtype=np.int64)
        for rows, cols, logits in self.logits_by_tile(image):
            out[rows, cols] = backend.to_numpy(logits.argmax(axis=0))
        return out

    def probabilities(self, image: np.ndarray, tta: str = "none") -> np.ndarray:
        """(K, H, W) float32 softmax probabilities of a (C, H, W) image (each pixel sums to 1).

        tta="flip": the mean of the probabilities of the image's 4 flips, each flipped back.
        """
        if check_tta(tta) == "flip":
            return flip_averaged(self.probabilities, image)
        out = np.empty((self.num_classes,) + image.shape[1:], dtype=np.float32)
        for rows, cols, logits in self.logits_by_tile(image):
            out[:, rows, cols] = backend.to_numpy(softmax(logits))
        return out

    def labels_at_scale(self, image: np.ndarray, tta: str = "none") -> np.ndarray:
        """(H, W) labels of an image at its own size, run at the training --scale.

        The image is resized by `scale` (bilinear, as training read it), labelled,
        and the labels resized back to (H, W) (nearest: labels are not mixed).
        """
        height, width = image.shape[1:]
        if self.scale == 1:
            return self.labels(image, tta)
        size = scaled_size(height, width, self.scale)
        return resize_mask(self.labels(resize_image(image, size), tta), (height, width))

    def probabilities_at_scale(self, image: np.ndarray, tta: str = "none") -> np.ndarray:
        """(K, H, W) probabilities at the image's own size (resized bilinearly from the scaled run)."""
        height, width = image.shape[1:]
        if self.scale == 1:
            return self.probabilities(image, tta)
        size = scaled_size(height, width, self.scale)
        return resize_image(self.probabilities(resize_image(image, size), tta), (height, width))


def softmax(logits):
    """Softmax over the first axis of (K, ...) logits, on their device (stable: max subtracted)."""
    xp = backend.get_array_module(logits)
    shifted = xp.exp(logits - logits.max(axis=0, keepdims=True))
    return shifted / shifted.sum(axis=0, keepdims=True)


def check_tta(tta: str) -> str:
    """`tta` if it is one of TTA_CHOICES, else ValueError naming --tta."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_CHOICES)}, got {tta!r}")
    return tta


def flip_averaged(probabilities_of, image: np.ndarray) -> np.ndarray:
    """The mean of probabilities_of over the 4 flips of a (C, H, W) image, each result flipped back.

        none | left-right | up-down | both        (FLIP_AXES: (), (2,), (1,), (1, 2))

    A flip is its own inverse, so flipping back is the same flip again, on
    the (K, H, W) result. The four are added in pairs, ((none + left-right)
    + (up-down + both)) / 4: for an image that is its own mirror image both
    ways, the mean is then exactly (bit for bit) mirror-symmetric too, since
    a + b == b + a in floating point (grouped otherwise it would not be).
    """
    results = [np.flip(probabilities_of(np.ascontiguousarray(np.flip(image, axes))), axes)
               for axes in FLIP_AXES]                                   # 4 x (K, H, W)
    return ((results[0] + results[1]) + (results[2] + results[3])) / 4


def clipped(span: slice, size: int) -> slice:
    """The part of a slice that lies in [0, size)."""
    return slice(min(span.start, size), min(span.stop, size))
