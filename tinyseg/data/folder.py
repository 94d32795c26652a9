"""Your own data: a folder of images and their masks.

Two layouts are understood. Either one pool, split at random (seeded):

    DIR/images/cat1.jpg   DIR/masks/cat1.png      paired by file stem ("cat1")
    DIR/images/cat2.png   DIR/masks/cat2.png
    DIR/classes.txt       (optional) one class name a line, class 0 first

or a split you made yourself:

    DIR/train/images/...  DIR/train/masks/...
    DIR/val/images/...    DIR/val/masks/...
    DIR/classes.txt       (optional)

Images: PNG or JPEG, grey or colour. Grey images give 1 channel, colour
images 3 (an alpha channel is dropped). If a dataset mixes grey and colour
images, every image is read as colour (grey copied into R, G and B), so all
examples have 3 channels. Values are scaled to [0, 1].

Masks: single-channel PNGs whose pixel values ARE the class indices,
0 .. C-1, with 255 meaning "unknown, ignore". A palette ("P" mode) PNG, as
most annotation tools save, is read as its indices, not its colours. Masks
must be PNG: JPEG compression blurs the edges into values that are no class
at all. An RGB mask (a coloured picture of the labels) is refused for the
same reason: its colours are not class indices.

The number of classes C comes from, in this order: the `classes` argument
(a count or a list of names), DIR/classes.txt, or the largest label found in
the masks, plus one.

Everything is checked while loading, and the first problem found stops the
load with one ValueError that names the file: an image without a mask, a
mask without an image, a mask of another size than its image, a label that
is neither < C nor 255, a JPEG mask, an RGB mask.

Pillow reads the files; it is imported only when a folder is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX, SegmentationDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
JPEG_SUFFIXES = (".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L")
MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def import_pillow():
    """The PIL.Image module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("reading image files needs Pillow: pip install 'tinyseg[images]'") from error
    return Image


def load_folder(path, classes: int | Sequence[str] | None = None, val_fraction: float = 0.2,
                seed: int = 0) -> tuple[SegmentationDataset, SegmentationDataset]:
    """Read a folder of images and masks into (train_dataset, val_dataset).

    path: DIR, in either layout above.
    classes: the number of classes, or their names; default: DIR/classes.txt
        if present, else the largest mask label + 1.
    val_fraction, seed: for the one-pool layout, the share of examples set
        aside for validation, chosen by a generator seeded with `seed`
        (the same seed always sets aside the same files).
    """
    Image = import_pillow()
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"load_folder: {root} is not a folder")
    if (root / "train").is_dir() or (root / "val").is_dir():
        train_pairs, val_pairs = find_pairs(root / "train"), find_pairs(root / "val")
    elif (root / "images").is_dir() or (root / "masks").is_dir():
        train_pairs, val_pairs = split_pairs(find_pairs(root), val_fraction, seed)
    else:
        raise ValueError(f"load_folder: {root} holds neither images/ and masks/ nor train/ and val/")
    train = [read_pair(Image, image, mask) for image, mask in train_pairs]
    val = [read_pair(Image, image, mask) for image, mask in val_pairs]
    class_names, source = find_class_names(classes, root, [mask for _, mask in train + val])
    for (_, mask_path), (_, mask) in zip(train_pairs + val_pairs, train + val):
        check_labels(mask_path, mask, len(class_names), source)
    channels = 3 if any(image.shape[0] == 3 for image, _ in train + val) else 1
    return (make_dataset(train, class_names, channels), make_dataset(val, class_names, channels))


def find_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image file, mask file) pairs of folder/images and folder/masks, by stem, sorted."""
    images = files_by_stem(folder / "images", kind="image")
    masks = files_by_stem(folder / "masks", kind="mask")
    for stem, image in images.items():
        if stem not in masks:
            raise ValueError(f"load_folder: image {image} has no mask "
                             f"(expected {folder / 'masks' / stem}.png)")
    for stem, mask in masks.items():
        if stem not in images:
            raise ValueError(f"load_folder: mask {mask} has no image (expected {folder / 'images' / stem}"
                             f" with one of {IMAGE_SUFFIXES})")
    if not images:
        raise ValueError(f"load_folder: {folder / 'images'} holds no images")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def files_by_stem(folder: Path, kind: str) -> dict[str, Path]:
    """The image (or mask) files in `folder`, keyed by name without suffix; hidden files skipped."""
    if not folder.is_dir():
        raise ValueError(f"load_folder: the folder {folder} is missing")
    found: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.name.startswith(".") or file.is_dir():
            continue
        suffix = file.suffix.lower()
        if kind == "mask" and suffix in JPEG_SUFFIXES:
            raise ValueError(f"load_folder: mask {file} is a JPEG; masks must be PNG "
                             "(JPEG compression changes the label values)")
        allowed = IMAGE_SUFFIXES if kind == "image" else (".png",)
        if suffix not in allowed:
            raise ValueError(f"load_folder: {kind} {file} has an unsupported type {suffix!r}, "
                             f"expected one of {allowed}")
        if file.stem in found:
            raise ValueError(f"load_folder: {file} and {found[file.stem]} share the name {file.stem!r}")
        found[file.stem] = file
    return found


def split_pairs(pairs: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Set aside round(val_fraction * N) pairs, at least 1 and at most N-1, chosen by `seed`."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"load_folder: val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(pairs)))
    if val_fraction > 0 and len(pairs) >= 2:
        n_val = min(max(n_val, 1), len(pairs) - 1)
    shuffled = np.random.default_rng(seed).permutation(len(pairs))
    val_indices = set(shuffled[:n_val].tolist())
    train = [pair for i, pair in enumerate(pairs) if i not in val_indices]
    val = [pair for i, pair in enumerate(pairs) if i in val_indices]
    return train, val


def read_pair(Image, image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (C, H, W), mask int64 (H, W)), with the sizes checked against each other."""
    image = read_image(Image, image_path)
    mask = read_mask(Image, mask_path)
    if mask.shape != image.shape[1:]:
        (h, w), (mh, mw) = image.shape[1:], mask.shape
        raise ValueError(f"load_folder: mask {mask_path} is {mw}x{mh} (width x height) but its image "
                         f"{image_path.name} is {w}x{h}")
    return image, mask


def read_image(Image, path: Path) -> np.ndarray:
    """A PNG or JPEG as float32 (1, H, W) if grey, (3, H, W) if colour, values in [0, 1]."""
    with Image.open(path) as picture:
        if picture.mode.startswith("I;16"):                          # 16-bit grey
            return (np.asarray(picture, dtype=np.float32) / 65535.0)[None]
        if picture.mode in GREY_MODES:
            return (np.asarray(picture.convert("L"), dtype=np.float32) / 255.0)[None]
        rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0      # (H, W, 3)
    return rgb.transpose(2, 0, 1).copy()                                       # (3, H, W)


def read_mask(Image, path: Path) -> np.ndarray:
    """A single-channel PNG of class indices as int64 (H, W); a palette PNG gives its indices."""
    with Image.open(path) as picture:
        if picture.mode not in MASK_MODES:
            raise ValueError(f"load_folder: mask {path} has mode {picture.mode!r} ({len(picture.getbands())} "
                             "channels); a mask must be one channel of class indices "
                             "(a grey 'L' or palette 'P' PNG), not a coloured picture")
        return np.asarray(picture).astype(np.int64)


def find_class_names(classes, root: Path, masks: list) -> tuple[list[str], str]:
    """The class names, and where their number came from (for error messages)."""
    if isinstance(classes, str):
        raise ValueError(f"load_folder: classes must be a number or a list of names, "
                         f"got the string {classes!r}")
    if isinstance(classes, (int, np.integer)):
        classes = int(classes)
        if classes < 1:
            raise ValueError(f"load_folder: classes must be at least 1, got {classes}")
        return default_names(classes), f"classes={classes}"
    if classes is not None:
        return [str(name) for name in classes], f"classes lists {len(classes)} names"
    listing = root / "classes.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        return names, f"{listing} lists {len(names)} classes"
    labels = [mask[mask != IGNORE_INDEX] for mask in masks]
    largest = max((int(found.max()) for found in labels if found.size), default=-1)
    if largest < 0:
        raise ValueError(f"load_folder: every mask under {root} is all {IGNORE_INDEX} (ignore); "
                         "pass classes= to say how many classes there are")
    return default_names(largest + 1), "the largest mask label"


def default_names(count: int) -> list[str]:
    return [f"class {i}" for i in range(count)]


def check_labels(path: Path, mask: np.ndarray, num_classes: int, source: str) -> None:
    """Raise ValueError naming `path` if a label is neither in 0 .. num_classes-1 nor IGNORE_INDEX."""
    bad = (mask != IGNORE_INDEX) & ((mask < 0) | (mask >= num_classes))
    if bad.any():
        raise ValueError(f"load_folder: mask {path} holds the label {int(mask[bad][0])}, but there are "
                         f"{num_classes} classes ({source}): labels must be 0..{num_classes - 1} "
                         f"or {IGNORE_INDEX} (ignore)")


def make_dataset(examples: list, class_names: list[str], channels: int) -> SegmentationDataset:
    """A SegmentationDataset of `channels`-channel images; grey images are repeated to RGB if needed."""
    images = [np.repeat(image, channels // image.shape[0], axis=0) for image, _ in examples]
    masks = [mask for _, mask in examples]
    return SegmentationDataset(images, masks, class_names, in_channels=channels)
