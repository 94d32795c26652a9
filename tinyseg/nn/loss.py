"""Loss modules with PyTorch's names: CrossEntropyLoss, DiceLoss, their sum, and FocalLoss.

A loss module only remembers its options; calling it runs the functional:

    criterion = nn.DiceLoss(ignore_index=255)
    loss = criterion(model(images), masks)        # == F.dice_loss(logits, masks, ignore_index=255)

    CrossEntropyLoss(weight, ignore_index, reduction)           F.cross_entropy, per pixel
    DiceLoss(weight, ignore_index, smooth, reduction)           F.dice_loss, per class over the batch
    CrossEntropyDiceLoss(weight, ignore_index, smooth, dice_weight)   ce + dice_weight * dice
    FocalLoss(gamma, weight, ignore_index, reduction)           F.focal_loss, per pixel

Which one. Cross-entropy scores every pixel on its own, so a class that
covers 1% of the pixels is 1% of the loss. Dice scores each class's overlap
as a whole, so a small class weighs as much as the background; but its
gradient is noisier when a class has few pixels. Their sum, the usual
choice for imbalanced segmentation, keeps cross-entropy's steady per-pixel
signal and adds Dice's equal say for every class. Focal loss stays per pixel
but scales each pixel's cross-entropy by (1 - p_t)^gamma, so the many pixels
already classified well (p_t near 1) weigh little and the hard ones lead.

Class weights (C,) are kept as a buffer, so `criterion.to("cuda")` moves
them with the model's tensors. `make_loss("ce+dice", weight, ignore_index)`
builds the criterion that `tinyseg train --loss` names.
"""

from __future__ import annotations

from tinyseg import functional as F
from tinyseg.nn.module import Module
from tinyseg.tensor import Tensor


class WeightedLoss(Module):
    """A loss with optional (C,) class weights, held as the buffer `weight` (or None)."""

    def __init__(self, weight=None, ignore_index: int = -100):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.weight = None
        if weight is not None:
            self.register_buffer("weight", Tensor(weight))       # a list becomes float32

    def extra_repr(self) -> str:
        weight = None if self.weight is None else [round(float(w), 4) for w in self.weight.numpy()]
        return f"weight={weight}, ignore_index={self.ignore_index}"


class PixelLoss(WeightedLoss):
    """A loss summed over pixels, each weighted by w[t] (cross-entropy, focal loss).

    Its mean is its sum divided by the summed weights of the labelled pixels
    (F.mean_divisor), so a batch's mean adds up from shares of its samples:
    each share's part_of_mean, its summed loss over the whole batch's divisor
    (data_parallel.py trains so).
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, ignore_index)
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return self.pixel_loss(input, target, self.reduction)

    def pixel_loss(self, input: Tensor, target, reduction: str) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define pixel_loss()")

    def mean_divisor(self, target, dtype):
        """What reduction="mean" divides the summed loss of `target`'s pixels by."""
        return F.mean_divisor(target, self.weight, self.ignore_index, dtype)

    def part_of_mean(self, input: Tensor, target, divisor) -> Tensor:
        """These samples' part of a batch's mean loss: their summed loss / the batch's mean_divisor."""
        return self.pixel_loss(input, target, "sum") / divisor


class CrossEntropyLoss(PixelLoss):
    """Softmax cross-entropy of (N, C[, H, W]) logits against (N[, H, W]) class indices."""

    def pixel_loss(self, input: Tensor, target, reduction: str) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=reduction)


class DiceLoss(WeightedLoss):
    """Soft multi-class Dice loss (see tinyseg/functional/dice.py for the formula)."""

    def __init__(self, weight=None, ignore_index: int = -100, smooth: float = 1.0,
                 reduction: str = "mean"):
        super().__init__(weight, ignore_index)
        self.smooth = smooth
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                           smooth=self.smooth, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, smooth={self.smooth}"


class CrossEntropyDiceLoss(WeightedLoss):
    """cross_entropy(mean) + dice_weight * dice_loss(mean), with the same weights and ignore_index."""

    def __init__(self, weight=None, ignore_index: int = -100, smooth: float = 1.0,
                 dice_weight: float = 1.0):
        super().__init__(weight, ignore_index)
        self.smooth = smooth
        self.dice_weight = float(dice_weight)

    def forward(self, input: Tensor, target) -> Tensor:
        ce = F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index)
        dice = F.dice_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                           smooth=self.smooth)
        return ce + dice * self.dice_weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, smooth={self.smooth}, dice_weight={self.dice_weight}"


class FocalLoss(PixelLoss):
    """Focal loss -(1 - p_t)^gamma log p_t per pixel (see tinyseg/functional/focal.py)."""

    def __init__(self, gamma: float = 2.0, weight=None, ignore_index: int = -100,
                 reduction: str = "mean"):
        super().__init__(weight, ignore_index, reduction)
        self.gamma = gamma

    def pixel_loss(self, input: Tensor, target, reduction: str) -> Tensor:
        return F.focal_loss(input, target, gamma=self.gamma, weight=self.weight,
                            ignore_index=self.ignore_index, reduction=reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, {super().extra_repr()}"


LOSSES = ("ce", "dice", "ce+dice", "focal")


def make_loss(name: str, weight=None, ignore_index: int = -100, gamma: float = 2.0) -> Module:
    """The criterion of `--loss NAME`: "ce" cross-entropy, "dice" Dice, "ce+dice" their sum,
    "focal" focal loss with exponent `gamma` (`--focal-gamma`)."""
    if name == "ce":
        return CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
    if name == "dice":
        return DiceLoss(weight=weight, ignore_index=ignore_index)
    if name == "ce+dice":
        return CrossEntropyDiceLoss(weight=weight, ignore_index=ignore_index)
    if name == "focal":
        return FocalLoss(gamma=gamma, weight=weight, ignore_index=ignore_index)
    raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {name!r}")
