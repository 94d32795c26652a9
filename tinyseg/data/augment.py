"""Augmentation: random changes of a training example that keep its meaning.

A disc turned upside-down, seen a little larger or in dimmer light is still
a disc. Training on such variants teaches the model that, without new
labels. Every change that MOVES pixels is applied to the image and its mask
alike, or the labels would no longer sit on the pixels they describe:

    change                 image (C, H, W)           mask (H, W)
    flip left-right/up-down  mirrored                mirrored the same way
    quarter turns (k x 90)   np.rot90                np.rot90 the same way
    scale s, then crop       bilinear resize         nearest resize (labels are
                             to (sH, sW), then the   never mixed: halfway between
                             same H x W window       class 1 and 3 is not class 2)
    crop (the loader's       the h x w window        the same window
    --crop)                  (crop_pair)
    brightness, contrast     changed                 unchanged

so a mask keeps only labels it had, and an ignored pixel (255) stays ignored.
When s < 1 the shrunken example is padded back to H x W at the bottom and
right with image 0 and mask 255, so the padding is left out of the loss.

Policies (`--augment`):

    "none"       nothing.
    "flip"       left-right and up-down flips, each with probability 1/2 (as before).
    "standard"   the flips, then three changes, each applied to an example with
                 probability APPLY_PROBABILITY = 1/2, on its own: k quarter
                 turns, k in 1..3 equally likely; a scale s uniform in
                 SCALE_RANGE = [0.75, 1.25] with a random crop (or padding)
                 back to the input size; the colour: contrast c uniform in
                 [0.8, 1.2] and brightness b uniform in [-0.1, 0.1].

Why each change only half the time: an example then still often looks as the
data does (1 in 8 sees none of the three), so the model learns the data
itself and its variants, rather than only variants (as common trainers do;
measured against always-on in benchmarks/results/augmentation.md).

Quarter turns of a non-square image would swap H and W, so images of one
size would come out in two shapes. For H != W the drawn k is therefore used
as 2 * (k % 2): a turn drawn with k = 1 or 3 becomes a half turn (180
degrees), k = 2 no turn, and the size never changes.

Colour, image only: with m the image's mean and r = max - min its range,

    image' = m + c * (image - m) + b * r

c stretches the values around their mean, b shifts them by a fraction of the
range; no clipping, so any value range (0..1 photographs, raw microscope
counts) is treated alike.

Seeded. The random numbers come from a numpy Generator, drawn in a fixed
order whatever the image size (`draw_augmentation`), and the changes are
then applied by plain functions of those numbers (`apply_augmentation`). A
training loader seeds one generator per example and epoch,

    rng = example_rng(seed, epoch, index)    # np.random.default_rng([seed, epoch, index])

so example i of epoch e is augmented the same way in every run, resumed or
not, whatever order the examples are served in; `augmentation_grid` uses the
same generators, so its picture shows what "standard" training sees. Under
"flip" the loader passes in the flips it drew for the whole epoch (its
epoch_plan, from (seed, epoch)), so the picture shows flips as likely as
training's, not the same ones.

Nothing is modified in place: the results are new arrays or views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX
from tinyseg.data.images import resize_image, resize_mask, scaled_size

POLICIES = ("none", "flip", "standard")
APPLY_PROBABILITY = 0.5         # "standard": the chance that each of its three changes is applied
SCALE_RANGE = (0.75, 1.25)
CONTRAST_RANGE = (0.8, 1.2)
BRIGHTNESS_RANGE = (-0.1, 0.1)


@dataclass(frozen=True)
class Augmentation:
    """The drawn numbers of one augmentation; the defaults change nothing."""

    horizontal: bool = False            # flip left-right
    vertical: bool = False              # flip upside-down
    quarter_turns: int = 0              # k counter-clockwise; 2 * (k % 2) for non-square images
    scale: float = 1.0                  # s
    corner: tuple = (0.0, 0.0)          # [u_top, u_left] in [0, 1): where the crop window sits
    contrast: float = 1.0               # c
    brightness: float = 0.0             # b


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that augments example `index` in epoch `epoch` of a run seeded with `seed`."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"--augment must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy


def as_policy(augment) -> str:
    """DataLoader(augment=...) as a policy: a name of POLICIES, or True/False (older callers) for
    "flip"/"none"."""
    policy = ("flip" if augment else "none") if isinstance(augment, bool) else augment
    if policy not in POLICIES:
        names = ", ".join(map(repr, POLICIES[:-1])) + f" or {POLICIES[-1]!r}"
        raise ValueError(f"DataLoader: augment must be {names} (or True/False), got {augment!r}")
    return policy


def draw_augmentation(rng: np.random.Generator, policy: str, flips=None) -> Augmentation:
    """The random numbers of one augmentation under `policy`, always drawn in the same order.

    flips: (horizontal, vertical) for "flip", when they were drawn already (a
    DataLoader draws a whole epoch's flips at once, in its epoch_plan); None
    draws them from rng. "standard" always draws its own, first, from rng.
    """
    check_policy(policy)
    if policy == "none":
        return Augmentation()
    if policy == "flip" and flips is not None:
        return Augmentation(horizontal=bool(flips[0]), vertical=bool(flips[1]))
    horizontal, vertical = (rng.random(2) < 0.5).tolist()
    if policy == "flip":
        return Augmentation(horizontal=horizontal, vertical=vertical)
    turn, rescale, recolour = (rng.random(3) < APPLY_PROBABILITY).tolist()   # which changes apply
    quarter_turns = int(rng.integers(1, 4))              # every number is drawn, applied or not,
    scale = float(rng.uniform(*SCALE_RANGE))             # so the draws stay in the same order
    corner = tuple(rng.random(2).tolist())
    contrast = float(rng.uniform(*CONTRAST_RANGE))
    brightness = float(rng.uniform(*BRIGHTNESS_RANGE))
    return Augmentation(horizontal=horizontal, vertical=vertical,
                        quarter_turns=quarter_turns if turn else 0,
                        scale=scale if rescale else 1.0, corner=corner,
                        contrast=contrast if recolour else 1.0,
                        brightness=brightness if recolour else 0.0)


def apply_augmentation(image: np.ndarray, mask: np.ndarray, augmentation: Augmentation):
    """image (C, H, W), mask (H, W) -> the pair changed as `augmentation` says (same H, W).

    Order: colour (image only), flips, quarter turns, scale and crop.
    """
    a = augmentation
    if (a.contrast, a.brightness) != (1.0, 0.0):
        image = brightness_contrast(image, a.brightness, a.contrast)
    image, mask = flip_pair(image, mask, horizontal=a.horizontal, vertical=a.vertical)
    height, width = mask.shape
    turns = a.quarter_turns % 4 if height == width else 2 * (a.quarter_turns % 2)
    image, mask = rotate90_pair(image, mask, turns)
    if a.scale != 1.0:
        image, mask = random_scale_crop_pair(image, mask, a.scale, a.corner)
    return image, mask


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, policy: str,
                 flips=None):
    """Draw an augmentation from `rng` under `policy` ("none", "flip", "standard") and apply it.

    flips: "flip"'s (horizontal, vertical) when already drawn (see draw_augmentation).
    """
    return apply_augmentation(image, mask, draw_augmentation(rng, policy, flips))


# ----------------------------------------------------------------- the changes
def flip_pair(image: np.ndarray, mask: np.ndarray, horizontal: bool, vertical: bool):
    """Flip an image (C, H, W) and its mask (H, W) the same way."""
    if horizontal:
        image, mask = image[:, :, ::-1], mask[:, ::-1]               # mirror the W axis
    if vertical:
        image, mask = image[:, ::-1, :], mask[::-1, :]               # mirror the H axis
    return image, mask


def crop_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int], corner):
    """The size = (h, w) window of image (C, H, W) and mask (H, W) placed by corner = [u_top, u_left].

    top = floor(u_top * (H - h + 1)), and the same for left. Where the image
    is smaller than the window it is padded: image 0, mask IGNORE_INDEX.
    """
    (height, width), (h, w) = mask.shape, size
    top = int(corner[0] * (max(height - h, 0) + 1))
    left = int(corner[1] * (max(width - w, 0) + 1))
    image = image[:, top:top + h, left:left + w]                      # (C, <=h, <=w)
    mask = mask[top:top + h, left:left + w]
    if mask.shape == (h, w):
        return image, mask
    padded_image = np.zeros((image.shape[0], h, w), dtype=image.dtype)
    padded_mask = np.full((h, w), IGNORE_INDEX, dtype=mask.dtype)
    padded_image[:, :mask.shape[0], :mask.shape[1]] = image
    padded_mask[:mask.shape[0], :mask.shape[1]] = mask
    return padded_image, padded_mask


def rotate90_pair(image: np.ndarray, mask: np.ndarray, k: int):
    """Turn image (C, H, W) and mask (H, W) by k x 90 degrees counter-clockwise (odd k swaps H, W)."""
    return np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k, axes=(0, 1))


def random_scale_crop_pair(image: np.ndarray, mask: np.ndarray, scale: float, corner):
    """Resize by `scale` (image bilinear, mask nearest), then cut back to the input's H x W.

    corner = [u_top, u_left] in [0, 1) places the window when the resized
    example is larger (top = floor(u_top * (sH - H + 1))); a smaller one is
    padded at the bottom and right, image with 0 and mask with 255.
    """
    if not scale > 0:
        raise ValueError(f"random_scale_crop_pair: scale must be > 0, got {scale!r}")
    height, width = mask.shape
    size = scaled_size(height, width, scale)                         # (sH, sW)
    scaled_image, scaled_mask = resize_image(image, size), resize_mask(mask, size)
    return crop_pair(scaled_image, scaled_mask, (height, width), corner)


def brightness_contrast(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """image' = m + contrast * (image - m) + brightness * (max - min), m the image's mean."""
    mean = image.mean()
    spread = image.max() - image.min() if image.size else 0.0
    return (mean + contrast * (image - mean) + brightness * spread).astype(np.float32)


# ----------------------------------------------------------------- the picture
def augmentation_grid(dataset, path, policy: str = "standard", seed: int = 0, count: int = 4,
                      epochs: int = 3):
    """Save a PNG of the first `count` examples as training sees them in its first `epochs` epochs.

    One row per example: image | mask | epoch 1 image | epoch 1 mask | ...,
    each augmented by example_rng(seed, epoch, index), with a legend of the
    class names. Returns the path.
    """
    from tinyseg.files import write_png
    from tinyseg.visualize import add_legend, colorize, draw_cells, draw_titles, import_pillow, to_display
    check_policy(policy)
    count = min(int(count), len(dataset))
    if count < 1 or epochs < 1:
        raise ValueError(f"augmentation_grid: need at least one example and one epoch, got "
                         f"count={count} (dataset of {len(dataset)}) and epochs={epochs}")
    columns = {"image": [], "mask": []}
    for epoch in range(epochs):
        columns[f"epoch {epoch + 1}"], columns[f"mask {epoch + 1}"] = [], []
    for index in range(count):
        image, mask = dataset[index]
        low, high = float(image.min()), float(image.max())        # one display range per row
        columns["image"].append(to_display(as_uint8(image, low, high)))
        columns["mask"].append(colorize(mask))
        for epoch in range(epochs):
            seen_image, seen_mask = augment_pair(image, mask, example_rng(seed, epoch, index), policy)
            columns[f"epoch {epoch + 1}"].append(to_display(as_uint8(seen_image, low, high)))
            columns[f"mask {epoch + 1}"].append(colorize(seen_mask))
    Image = import_pillow()
    pictures = [picture for column in columns.values() for picture in column]
    height = max(picture.shape[0] for picture in pictures)
    width = max(picture.shape[1] for picture in pictures)
    scale = max(1, -(-96 // max(height, width)))                     # cells of at least 96 pixels
    picture = Image.fromarray(draw_cells(columns, count, height * scale, width * scale, scale))
    draw_titles(picture, list(columns), width * scale)
    picture = add_legend(Image, picture, dataset.class_names)
    write_png(path, picture)
    return path


def as_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] to 0..255 (clipped), so a brightness change stays visible on screen.

    (visualize.to_display stretches each image to its own range, which would undo it.)
    """
    stretched = (image - low) / (high - low) if high > low else np.zeros(image.shape)
    return np.round(np.clip(stretched, 0, 1) * 255).astype(np.uint8)
