"""The check before the first step: one streaming pass over every file of a folder.

Each (image, mask) pair is read once, checked, measured and let go, so the
pass needs the memory of one image, not of the folder. What it keeps of a
pair is a few numbers, a ScannedPair:

    the two paths, the image's channel count and (scaled) size,
    the pixel count, channel means and M2 of the (scaled) image  -> normalize.py
    the distinct labels of the (scaled) mask and how many pixels hold each,
    and the distinct labels before scaling (to tell what --scale lost)

Training then reads the files again, one batch at a time (FolderDataset),
and the class pixel counts and channel statistics come from these records
without a second pass.

Every problem is written down, none raises on its own: the caller raises
one DataError listing them all (problems.py). Two things do stop the pass:
OutOfTime, once time.perf_counter() passes the caller's `deadline`, and
Ctrl+C. A pass that takes more than a few seconds shows a progress bar
(tqdm's, if installed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX
from tinyseg.data.images import (JPEG_MASK_PROBLEM, read_image, read_mask, resize_image, resize_mask,
                                 scaled_size)
from tinyseg.data.normalize import image_moments
from tinyseg.data.problems import DataError, OutOfTime
from tinyseg.progress import progress

JPEG_SUFFIXES = (".jpg", ".jpeg")
PROGRESS_DELAY = 2.0            # seconds before the bar appears: a quick check stays quiet
TINY_SIDE = 4                   # an image scaled below this many pixels a side is a problem
USEFUL_SIDE = 32                # the short side a suggested --scale keeps


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
    full_size: tuple[int, int]                      # (H, W) as the files are
    full_labels: np.ndarray                         # distinct mask values before scaling


def scan_pairs(pairs, scale: float, problems: list, mask_labels=None, show_progress: bool = False,
               deadline: float | None = None) -> list[ScannedPair]:
    """ScannedPairs of the pairs that read well; what is wrong with the others goes to `problems`.

    mask_labels: the MaskLabels that turn mask files into class indices (None: as stored).
    show_progress: a progress bar, once the pass has taken PROGRESS_DELAY seconds.
    deadline: a time.perf_counter() value; past it, OutOfTime is raised before the next pair.
    """
    scanned, pairs = [], list(pairs)
    for done, (image_path, mask_path) in enumerate(progress(pairs, len(pairs), "checking the data",
                                                             show_progress, PROGRESS_DELAY)):
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime("checking the data", done, len(pairs), "pairs")
        record = scan_pair(image_path, mask_path, scale, problems, mask_labels)
        if record is not None:
            scanned.append(record)
    return scanned


def scan_pair(image_path: Path, mask_path: Path, scale: float, problems: list,
              mask_labels=None) -> ScannedPair | None:
    """Read, check and measure one pair; None (and problems noted) if anything is wrong."""
    image = read_or_note(read_image, image_path, problems)
    if mask_path.suffix.lower() in JPEG_SUFFIXES:
        problems.append((mask_path, JPEG_MASK_PROBLEM))
        mask = None
    else:
        mask = read_or_note(lambda path: read_mask(path, mask_labels), mask_path, problems)
    if image is None or mask is None:
        return None
    if mask.shape != image.shape[1:]:
        (h, w), (mh, mw) = image.shape[1:], mask.shape
        problems.append((mask_path, f"{mw}x{mh} (width x height) but its image {image_path.name} "
                                    f"is {w}x{h} (as a viewer shows it)"))
        return None
    impossible = mask[(mask < 0) | (mask > IGNORE_INDEX)]
    if impossible.size:
        problems.append((mask_path, f"holds the label {int(impossible.min())}: labels are class "
                                    f"indices 0..254 or {IGNORE_INDEX} (ignore); an instance mask (one "
                                    "number per object) is not a class mask"))
        return None
    full_size, full_labels = mask.shape, distinct_labels(mask)[0]
    if scale != 1:
        size = scaled_size(*mask.shape, scale)
        image, mask = resize_image(image, size), resize_mask(mask, size)
    labels, counts = distinct_labels(mask)
    return ScannedPair(image_path, mask_path, image.shape[0], mask.shape, image_moments(image),
                       labels, counts, full_size, full_labels)


def distinct_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct labels of a mask of 0..255, the pixel count of each), both int64."""
    counts = np.bincount(mask.ravel(), minlength=IGNORE_INDEX + 1)      # pixels of each value 0..255
    labels = np.flatnonzero(counts)
    return labels.astype(np.int64), counts[labels].astype(np.int64)


def read_or_note(reader, path: Path, problems: list):
    """reader(path), or None with the reader's DataError noted in `problems` (predict uses it too)."""
    try:
        return reader(path)
    except DataError as error:
        problems.extend(error.problems)
        return None


def labels_present(records: list[ScannedPair], full_size: bool = False) -> set[int]:
    """Every class label found in the (scaled, or with full_size the unscaled) masks; 255 left out."""
    return {int(label) for record in records
            for label in (record.full_labels if full_size else record.labels) if label != IGNORE_INDEX}


def scale_problem(records: list[ScannedPair], scale: float) -> str | None:
    """What `scale` destroyed, or None: classes only the full-size masks hold, or images of a few pixels.

    Nearest-neighbour shrinking keeps one label in every 1/scale**2 pixels,
    so at --scale 0.01 a class that fills less than 1 pixel in 10,000 may be
    gone from every mask. The message blames the option, not the masks.
    """
    if scale == 1 or not records:
        return None
    shortest = min(min(record.full_size) for record in records)
    suggestion = min(1.0, math.ceil(USEFUL_SIDE / shortest * 100) / 100)
    advice = (f"use a larger --scale, e.g. {suggestion:g} (the shortest side then keeps "
              f"{scaled_size(shortest, shortest, suggestion)[0]} pixels)")
    lost = sorted(labels_present(records, full_size=True) - labels_present(records))
    if lost:
        return (f"--scale {scale:g} shrinks the masks so far that the class(es) "
                f"{', '.join(map(str, lost))} vanish from every mask (they are there at full size): "
                f"{advice}")
    smallest = min(records, key=lambda record: min(record.size))
    if min(smallest.size) < TINY_SIDE <= min(smallest.full_size):
        (h, w), (full_h, full_w) = smallest.size, smallest.full_size
        return (f"--scale {scale:g} shrinks {smallest.image} to {w}x{h} pixels (from "
                f"{full_w}x{full_h}), too small to learn from: {advice}")
    return None


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
