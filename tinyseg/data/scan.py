"""The check before the first step: one streaming pass over every file of a folder.

Each (image, mask) pair is read once, checked, measured and let go, so the
pass needs the memory of one image, not of the folder. What it keeps of a
pair is a few numbers, a ScannedPair:

    the two paths, the image's channel count and (scaled) size,
    the pixel count, channel means and M2 of the (scaled) image  -> normalize.py
    the distinct labels of the (scaled) mask and how many pixels hold each

Training then reads the files again, one batch at a time (FolderDataset),
and the class pixel counts and channel statistics come from these records
without a second pass.

Every problem is written down, none raises on its own: the caller raises
one DataError listing them all (problems.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX
from tinyseg.data.images import read_image, read_mask, resize_image, resize_mask, scaled_size
from tinyseg.data.normalize import image_moments
from tinyseg.data.problems import DataError

JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class ScannedPair:
    """What the scan learnt about one (image, mask) pair."""
    image: Path
    mask: Path
    channels: int                                   # 1 or 3, as the file is
    size: tuple[int, int]                           # (H, W) after scaling
    moments: tuple[int, np.ndarray, np.ndarray]     # (pixels, mean (C,), M2 (C,)) after scaling
    labels: np.ndarray                              # distinct mask values, int64, 255 included
    counts: np.ndarray                              # pixels holding each of them


def scan_pairs(pairs, scale: float, problems: list) -> list[ScannedPair]:
    """ScannedPairs of the pairs that read well; what is wrong with the others goes to `problems`."""
    scanned = []
    for image_path, mask_path in pairs:
        record = scan_pair(image_path, mask_path, scale, problems)
        if record is not None:
            scanned.append(record)
    return scanned


def scan_pair(image_path: Path, mask_path: Path, scale: float, problems: list) -> ScannedPair | None:
    """Read, check and measure one pair; None (and problems noted) if anything is wrong."""
    image = read_or_note(read_image, image_path, problems)
    if mask_path.suffix.lower() in JPEG_SUFFIXES:
        problems.append((mask_path, "a JPEG; masks must be PNG or TIFF (JPEG compression changes "
                                    "the label values at every edge)"))
        mask = None
    else:
        mask = read_or_note(read_mask, mask_path, problems)
    if image is None or mask is None:
        return None
    if mask.shape != image.shape[1:]:
        (h, w), (mh, mw) = image.shape[1:], mask.shape
        problems.append((mask_path, f"{mw}x{mh} (width x height) but its image {image_path.name} "
                                    f"is {w}x{h} (as a viewer shows it)"))
        return None
    if scale != 1:
        size = scaled_size(*mask.shape, scale)
        image, mask = resize_image(image, size), resize_mask(mask, size)
    impossible = mask[(mask < 0) | (mask > IGNORE_INDEX)]
    if impossible.size:
        problems.append((mask_path, f"holds the label {int(impossible.min())}: labels are class "
                                    f"indices 0..254 or {IGNORE_INDEX} (ignore); an instance mask (one "
                                    "number per object) is not a class mask"))
        return None
    counts = np.bincount(mask.ravel(), minlength=IGNORE_INDEX + 1)      # pixels of each value 0..255
    labels = np.flatnonzero(counts)
    return ScannedPair(image_path, mask_path, image.shape[0], mask.shape, image_moments(image),
                       labels.astype(np.int64), counts[labels].astype(np.int64))


def read_or_note(reader, path: Path, problems: list):
    """reader(path), or None with the reader's DataError noted in `problems` (predict uses it too)."""
    try:
        return reader(path)
    except DataError as error:
        problems.extend(error.problems)
        return None


def labels_present(records: list[ScannedPair]) -> set[int]:
    """Every class label found in the masks (255, ignore, left out)."""
    return {int(label) for record in records for label in record.labels if label != IGNORE_INDEX}


def check_labels(records: list[ScannedPair], num_classes: int, source: str, problems: list) -> None:
    """Note every mask holding a label that is neither < num_classes nor 255."""
    for record in records:
        bad = [int(label) for label in record.labels
               if label != IGNORE_INDEX and label >= num_classes]
        if bad:
            problems.append((record.mask, f"holds the label {bad[0]}, but there are {num_classes} "
                                          f"classes ({source}): labels must be 0..{num_classes - 1} "
                                          f"or {IGNORE_INDEX} (ignore)"))


def class_problem(present: set[int], has_ignore: bool, for_training: bool) -> str | None:
    """What is wrong with the set of labels of a whole folder, or None.

    0 and 255 alone is the classic mistake: a black-and-white mask saved as
    0/255, which tinyseg reads as "class 0, and ignore the rest".
    """
    if present == {0} and has_ignore:
        return ("every mask holds only 0 and 255. These look like binary masks saved as 0/255 "
                "(black and white), but tinyseg reads 255 as 'ignore this pixel', so only class 0 "
                "would be learnt. Save the foreground as 1 instead, e.g. in Python: "
                "mask = (mask > 0).astype(np.uint8)")
    if for_training and not present:
        return f"no mask holds any class label: every pixel is {IGNORE_INDEX} (ignore)"
    if for_training and len(present) == 1:
        label = present.pop()
        return (f"every mask holds only the class {label} (besides {IGNORE_INDEX}, ignore): a "
                "segmenter learns to tell classes apart, so training needs at least two")
    return None
