"""What every segmentation model has in common, and the two hooks a training loop calls.

    class FCN(SegmentationModel):
        name = "fcn"
        def __init__(self, in_channels=3, num_classes=2, width=32, ...):
            super().__init__(in_channels, num_classes)
            ...
            self.record_config(in_channels=in_channels, num_classes=num_classes, width=width, ...)

A model is more than its forward(). The training loop, evaluation and
prediction each need to know two things that differ from model to model,
and they ask the model itself instead of testing its name:

    training_loss(images, masks, criterion, rng)   how the model learns from a batch.
        The default runs forward() on the whole images and scores every pixel.
        The sliding window overrides it: it samples windows and classifies
        each one on its own, the way it was designed to be trained.
    inference_model()                               which module to run for labels.
        The default is the model itself. The sliding window returns its
        to_fcn() rewrite: the same weights and labels, one convolutional pass.

and one fact a trainer checks before the first epoch, smallest_normalized_map
(the U-Net's bottleneck, when it has batch norm). Tools that look inside a
trained model ask it `stages()`: the blocks whose outputs are worth a picture
(each U-Net level, each FCN layer), so they never test a model's name.

predict() is written once, here, on top of inference_model(): labels come
out of the fast form whenever a model has one.

`config` records the constructor's own arguments (with the model's `name`),
JSON-ready, so that models.build_model(model.config) builds the same model:
the arguments that decide the architecture and the initial weights. A knob
that only changes how the model is run (the sliding window's chunk_size and
windows_per_image) is left out.
"""

from __future__ import annotations

from tinyseg.autograd import no_grad
from tinyseg.nn.layers import ReLU
from tinyseg.nn.module import Module, Sequential
from tinyseg.tensor import Tensor


class SegmentationModel(Module):
    """Base class of the models: (N, in_channels, H, W) -> (N, num_classes, H, W) logits.

    Subclasses set `name` (their key in models.MODELS), call
    super().__init__(in_channels, num_classes) first and record_config(...) last.
    """

    name = "model"

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.config = {"name": self.name}

    def record_config(self, **arguments) -> None:
        """config = {"name": name, **the constructor's arguments}: what build_model() needs."""
        self.config = {"name": self.name, **arguments}

    def check_input(self, x) -> None:
        """Refuse anything but an (N, in_channels, H, W) Tensor, naming the model and the shape."""
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: input must be a (N, {self.in_channels}, H, W) "
                             f"Tensor, got {shape}")

    # ------------------------------------------------------------------ the two hooks
    def training_loss(self, images: Tensor, masks, criterion, rng) -> Tensor:
        """The scalar loss of one batch: criterion(logits, masks) over every pixel.

        images (B, C, H, W) Tensor, masks (B, H, W) integer labels on the same
        device. criterion(logits, target) -> scalar Tensor (cross-entropy that
        skips the ignore label). rng: a NumPy Generator for models that draw
        random samples (unused here).
        """
        return criterion(self(images), masks)                  # logits (B, classes, H, W)

    def inference_model(self) -> Module:
        """The module that computes this model's logits fastest: here, the model itself."""
        return self

    def smallest_normalized_map(self, height: int, width: int) -> int | None:
        """Pixels per image of the smallest map a BatchNorm2d normalises, for an H x W input.

        None when the model has no batch norm (the default). Training mode
        normalises each channel by the mean and variance of its values in the
        batch, so it needs batch size x this > 1 (train.py checks it before
        the first epoch; a batch of one 8 x 8 image leaves a depth-3 U-Net's
        bottleneck a single value per channel).
        """
        return None

    def stages(self) -> list[str]:
        """Module paths of the blocks whose outputs show what the model computes, in forward order.

        `tinyseg inspect` draws each one's output (its feature maps), and
        training groups the gradient norms by them. The default: every
        direct child ("features", "head", ...). Models override it with
        their own story: the U-Net's levels, the FCN's layers after ReLU.
        """
        return [name for name, _ in self.named_children()]

    def predict(self, x: Tensor) -> Tensor:
        """(N, H, W) integer labels: the highest-scoring class at each pixel."""
        self.check_input(x)
        with no_grad():
            return self.inference_model()(x).argmax(axis=1)


def relu_outputs(layers: Sequential, name: str) -> list[str]:
    """The paths of a Sequential's ReLUs, e.g. ["features.1", "features.3"]: each layer's output."""
    return [f"{name}.{i}" for i, layer in enumerate(layers) if isinstance(layer, ReLU)]
