"""The Pascal VOC layout, read as it ships (VOCdevkit/VOC2012, or VOC2007).

    VOC2012/JPEGImages/2007_000032.jpg          every photo (17,125; 2,913 have masks)
    VOC2012/SegmentationClass/2007_000032.png   palette PNGs: the index is the class,
                                                255 (drawn cream) the borders of objects
    VOC2012/ImageSets/Segmentation/train.txt    the ids of the training split, one a line (1,464)
    VOC2012/ImageSets/Segmentation/val.txt      the ids of the validation split (1,449)

load_folder recognises the layout by JPEGImages/ and SegmentationClass/,
pairs each listed id's photo with its mask, and names the 21 classes as
VOC does (background, aeroplane, ...) unless classes.txt or `classes` say
otherwise. The masks are palette PNGs, so their indices are the labels,
255 is ignore: nothing needs converting. An id listed without its photo or
its mask is a problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor"]
VOC_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
SPLITS = Path("ImageSets") / "Segmentation"


def is_voc_layout(root: Path) -> bool:
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


def voc_folder_inside(root: Path) -> Path | None:
    """A folder below `root` (VOCdevkit/VOC2012, VOC2012) in the VOC layout, for a hint; else None."""
    for candidate in sorted(root.glob("*")) + sorted(root.glob("*/*")):
        if candidate.is_dir() and is_voc_layout(candidate):
            return candidate
    return None


def voc_pairs(root: Path, split: bool, problems: list) -> tuple[list, list]:
    """(train pairs, val pairs) of the ids in train.txt and val.txt; with split=False every id in train.

    A missing list (both are needed to split, one will do otherwise) or an
    id without its files adds a problem; the pairs found are returned.
    """
    lists = {name: root / SPLITS / f"{name}.txt" for name in ("train", "val")}
    present = {name: path for name, path in lists.items() if path.is_file()}
    missing = [path for name, path in lists.items() if name not in present]
    if split or not present:
        problems.extend((path, "this list of ids is missing (the Pascal VOC layout splits by "
                               "ImageSets/Segmentation/train.txt and val.txt)") for path in missing)
    pairs = {name: listed_pairs(root, path, problems) for name, path in present.items()}
    train, val = pairs.get("train", []), pairs.get("val", [])
    if split:
        return train, val
    every = list(dict.fromkeys(train + val))                  # an id in both lists once
    return every, []


def listed_pairs(root: Path, listing: Path, problems: list) -> list[tuple[Path, Path]]:
    """(photo, mask) of each id of `listing`; a problem for each id whose files are not there."""
    pairs, listed = [], 0
    for number, line in enumerate(listing.read_text(errors="surrogateescape").splitlines(), start=1):
        if not line.split():
            continue
        name, listed = line.split()[0], listed + 1
        image = next((root / "JPEGImages" / f"{name}{suffix}" for suffix in VOC_IMAGE_SUFFIXES
                      if (root / "JPEGImages" / f"{name}{suffix}").is_file()), None)
        mask = root / "SegmentationClass" / f"{name}.png"
        if image is None or not mask.is_file():
            lacking = [str(path) for path, there in ((root / "JPEGImages" / f"{name}.jpg", image),
                                                     (mask, mask.is_file())) if not there]
            problems.append((listing, f"line {number} lists {name!r}, but {' and '.join(lacking)} "
                                      f"{'is' if len(lacking) == 1 else 'are'} missing"))
            continue
        pairs.append((image, mask))
    if not listed:
        problems.append((listing, "lists no id"))
    return pairs


def voc_palette(count: int = 256) -> np.ndarray:
    """uint8 (count, 3): VOC's colour of each index (0 black, 1 dark red, ..., 255 cream).

    Index i's bits are dealt out to the three colours, highest bit first:
    bit 0 to red, bit 1 to green, bit 2 to blue, bit 3 to red again, one
    place lower, and so on; so neighbouring classes get distant colours.
    """
    palette = np.zeros((count, 3), np.uint8)
    for index in range(count):
        value, shift = index, 7
        while value:
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << shift
            value, shift = value >> 3, shift - 1
    return palette
