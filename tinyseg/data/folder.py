"""Your own data: a folder of images and their masks.

Three layouts are understood. Either one pool, split at random (seeded):

    DIR/images/cat1.jpg   DIR/masks/cat1.png      paired by file stem ("cat1")
    DIR/images/cat2.tif   DIR/masks/cat2.png
    DIR/classes.txt       (optional) one class name a line, class 0 first

or a split you made yourself:

    DIR/train/images/...  DIR/train/masks/...
    DIR/val/images/...    DIR/val/masks/...
    DIR/classes.txt       (optional)

or Pascal VOC as it ships (voc.py): DIR/JPEGImages/, DIR/SegmentationClass/
and the split in DIR/ImageSets/Segmentation/train.txt and val.txt.

Images: PNG, JPEG or TIFF, at any bit depth and channel layout those allow,
read exactly or refused with a message that says why (images.py has the
table of what each gives; EXIF orientation is applied). Grey gives 1
channel, colour 3 (alpha dropped). If a dataset mixes grey and colour
images, every image is read as colour (grey copied into R, G and B).

Masks: single-channel PNG (or TIFF) files whose pixel values ARE the class
indices, 0 .. C-1, with 255 meaning "unknown, ignore". A palette ("P")
PNG, as most annotation tools save, is read as its indices, not its
colours. Masks must not be JPEG: its compression blurs the edges into
values that are no class at all. An RGB mask (a coloured picture of the
labels) is refused for the same reason, unless `mask_labels` holds its
colour table (--mask-colors); `mask_labels` also remaps ids (--label-map,
--reduce-zero-label): see mask_labels.py.

The class names come from, in this order: the `classes` argument (a count
or a list of names), the colour table's names, DIR/classes.txt, the
layout's own (VOC's 21), or the largest label found in the masks, plus one
("class 0", "class 1", ...).

Before anything trains, one pass reads every file (scan.py) and writes down
every problem: a file that is no image or is cut short, an image without a
mask or a mask without an image, a mask of another size than its image, a
label that is neither < C nor 255, a JPEG or colour mask, a colour not in
the table, a class that `scale` shrank out of every mask. Then one
DataError lists them all. The pass holds one image at a time; the datasets
it returns read their files again when a batch needs them (FolderDataset).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX, FolderDataset
from tinyseg.data.images import import_pillow, read_image, read_mask  # noqa: F401  (the readers live in images.py)
from tinyseg.data.mask_labels import MaskLabels
from tinyseg.data.problems import DataError
from tinyseg.data.scan import (JPEG_SUFFIXES, check_labels, class_problem, labels_present, scale_problem,
                               scan_pairs)
from tinyseg.data.voc import VOC_CLASSES, is_voc_layout, voc_folder_inside, voc_pairs

SYSTEM_FILES = ("thumbs.db", "ehthumbs.db", "desktop.ini")    # Windows' own files in picture folders
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")


def load_folder(path, classes: int | Sequence[str] | None = None, val_fraction: float = 0.2,
                seed: int = 0, scale: float = 1.0, val_count: int | None = None, split: bool = True,
                mask_labels: MaskLabels | None = None, progress: bool = False,
                deadline: float | None = None):
    """Check a folder of images and masks; return (train, val) FolderDatasets, or one if split=False.

    path: DIR, in either layout above.
    classes: the number of classes, or their names; default: DIR/classes.txt
        if present, else the largest mask label + 1.
    val_fraction, seed: for the one-pool layout, the share of pairs set aside
        for validation (at least 1, and at least 1 left to train on), chosen
        by a generator seeded with `seed`: the same seed sets aside the same files.
    scale: resize every example by this factor when it is read (images
        bilinear, masks nearest); 0.5 halves a 1000x750 photo to 500x375.
    val_count: for the one-pool layout, exactly this many pairs for
        validation (overrides val_fraction).
    split: False returns ONE FolderDataset of every pair (train/ and val/
        together, the whole pool, or VOC's train.txt and val.txt ids), e.g. to
        score a checkpoint on a folder; with `classes` given, a folder lacking
        some of them is fine.
    mask_labels: how mask files become class indices (a colour table, a
        label map, reduce-zero-label: mask_labels.py); None reads them as stored.
        The datasets keep it as `.mask_labels`.
    progress: show a progress bar (tqdm, if installed) when the check takes
        more than a few seconds.
    deadline: a time.perf_counter() value; the check raises OutOfTime
        (problems.py) once it is passed.

    Raises DataError listing every problem found (problems.py).
    """
    import_pillow()
    root = Path(path)
    mask_labels = mask_labels if mask_labels is not None else MaskLabels()
    layout_names = None
    scale = check_scale(scale)
    if not root.is_dir():
        raise DataError(root, [(root, "no such folder")])
    problems: list = []
    if (root / "train").is_dir() or (root / "val").is_dir():
        train_pairs = find_pairs(root / "train", problems)
        val_pairs = find_pairs(root / "val", problems)
    elif (root / "images").is_dir() or (root / "masks").is_dir():
        pool = find_pairs(root, problems)
        if split and not problems:
            train_pairs, val_pairs = split_pairs(root, pool, val_fraction, seed, val_count)
        else:
            train_pairs, val_pairs = pool, []
    elif is_voc_layout(root):
        train_pairs, val_pairs = voc_pairs(root, split, problems)
        layout_names = (VOC_CLASSES, "the Pascal VOC layout's 21 classes")
    else:
        inside = voc_folder_inside(root)
        hint = f" ({inside} below has the Pascal VOC layout: pass that folder)" if inside else ""
        raise DataError(root, [(root, "holds neither images/ and masks/ nor train/ and val/, nor the "
                                      f"Pascal VOC layout's JPEGImages/ and SegmentationClass/{hint}")])

    records = scan_pairs(train_pairs + val_pairs, scale, problems, mask_labels, progress,
                         deadline)                                       # the one pass
    table_names = mask_labels.class_names
    class_names, source = find_class_names(
        classes, root, labels_present(records, full_size=True), problems,
        (table_names, f"{mask_labels.colors_file} names {len(table_names)} classes") if table_names else None,
        layout_names)
    if class_names is not None:
        check_labels(records, len(class_names), source, problems)
    if problems:
        raise DataError(root, problems)
    has_ignore = any((record.labels == IGNORE_INDEX).any() for record in records)
    trouble = (scale_problem(records, scale)
               or class_problem(labels_present(records), has_ignore, for_training=split))
    if trouble:
        raise DataError(root, [(root, trouble)])

    channels = 3 if any(record.channels == 3 for record in records) else 1
    if not split:
        return FolderDataset(records, class_names, channels, scale, mask_labels)
    train_count = len(train_pairs)
    return (FolderDataset(records[:train_count], class_names, channels, scale, mask_labels),
            FolderDataset(records[train_count:], class_names, channels, scale, mask_labels))


def check_scale(scale) -> float:
    """`scale` as a float, or a ValueError unless it is finite and > 0."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"load_folder: scale must be a number, got {scale!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"load_folder: scale must be finite and > 0, got {scale!r}")
    return value


def find_pairs(folder: Path, problems: list) -> list[tuple[Path, Path]]:
    """(image file, mask file) pairs of folder/images and folder/masks, by stem, sorted.

    An image without a mask, a mask without an image, an empty or missing
    folder each add a problem; the pairs that match are returned.
    """
    images = files_by_stem(folder / "images", IMAGE_SUFFIXES, problems)
    masks = files_by_stem(folder / "masks", MASK_SUFFIXES + JPEG_SUFFIXES, problems)
    for stem, image in images.items():
        if stem not in masks:
            problems.append((image, f"an image without a mask (expected {folder / 'masks' / stem}.png)"))
    for stem, mask in masks.items():
        if stem not in images:
            problems.append((mask, f"a mask without an image (expected {folder / 'images' / stem} "
                                   f"with one of {', '.join(IMAGE_SUFFIXES)})"))
    if (folder / "images").is_dir() and not images:
        problems.append((folder / "images", "holds no images"))
    return [(images[stem], masks[stem]) for stem in sorted(images) if stem in masks]


def files_by_stem(folder: Path, suffixes: tuple, problems: list) -> dict[str, Path]:
    """The files of `folder` with one of `suffixes`, keyed by name without suffix.

    Hidden files (".DS_Store", macOS's "._photo.jpg"), the files Windows
    leaves in picture folders (Thumbs.db, desktop.ini) and sub-folders are
    skipped; other types and two files of one stem are problems.
    """
    if not folder.is_dir():
        problems.append((folder, "this folder is missing"))
        return {}
    found: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.name.startswith(".") or file.name.lower() in SYSTEM_FILES or file.is_dir():
            continue
        if file.suffix.lower() not in suffixes:
            problems.append((file, f"an unsupported type {file.suffix!r}, expected one of "
                                   f"{', '.join(suffixes)}"))
        elif file.stem in found:
            problems.append((file, f"{file.name} and {found[file.stem].name} share the name "
                                   f"{file.stem!r}: which one goes with the other file?"))
        else:
            found[file.stem] = file
    return found


def split_pairs(root: Path, pairs: list, val_fraction: float, seed: int,
                val_count: int | None) -> tuple[list, list]:
    """Set aside val_count (or round(val_fraction * N), at least 1 and at most N-1) pairs, by `seed`.

    Validation needs at least one image: training keeps the checkpoint of
    the best validation mIoU. Training needs at least one too.
    """
    if val_count is None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"load_folder: val_fraction must be in (0, 1), got {val_fraction}: "
                             "validation needs at least 1 image (use split=False for one dataset "
                             "of every pair)")
        n_val = min(max(int(round(val_fraction * len(pairs))), 1), len(pairs) - 1)
    else:
        if int(val_count) != val_count or val_count < 1:
            raise ValueError(f"load_folder: val_count must be a whole number >= 1, got {val_count!r}: "
                             "validation needs at least 1 image (training keeps the checkpoint with "
                             "the best validation mIoU)")
        n_val = int(val_count)
    if len(pairs) < 2 or n_val >= len(pairs):
        raise DataError(root, [(root, f"{len(pairs)} image/mask pair(s), too few to set aside "
                                      f"{n_val} for validation and still train on one; add images, "
                                      "lower the validation count, or make train/ and val/ folders")])
    shuffled = np.random.default_rng(seed).permutation(len(pairs))
    val_indices = set(shuffled[:n_val].tolist())
    train = [pair for i, pair in enumerate(pairs) if i not in val_indices]
    val = [pair for i, pair in enumerate(pairs) if i in val_indices]
    return train, val


def find_class_names(classes, root: Path, present: set[int], problems: list,
                     table: tuple[list, str] | None = None, layout: tuple[list, str] | None = None):
    """(class names, where their number came from); (None, "") with a problem noted if unknown.

    In this order: `classes`, the colour table's (names, source) `table`,
    root/classes.txt, the layout's own (names, source) `layout`, the largest label.
    """
    if isinstance(classes, str):
        raise ValueError(f"load_folder: classes must be a number or a list of names, "
                         f"got the string {classes!r}")
    if isinstance(classes, (int, np.integer)):
        classes = int(classes)
        if classes < 1:
            raise ValueError(f"load_folder: classes must be at least 1, got {classes}")
        return default_names(classes), f"classes={classes}"
    if classes is not None:
        if len(classes) == 0:
            raise ValueError("load_folder: classes is an empty list; name at least one class")
        return [str(name) for name in classes], f"classes lists {len(classes)} names"
    if table is not None:
        return list(table[0]), table[1]
    listing = root / "classes.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        if not names:
            problems.append((listing, "names no class; write one class name a line, class 0 first"))
            return None, ""
        return names, f"{listing} lists {len(names)} classes"
    if layout is not None:
        return list(layout[0]), layout[1]
    if not present:
        if not problems:
            problems.append((root, f"every mask is all {IGNORE_INDEX} (ignore), so the number of "
                                   "classes is unknown: pass classes= (--classes N) or write classes.txt"))
        return None, ""
    return default_names(max(present) + 1), "the largest mask label"


def default_names(count: int) -> list[str]:
    return [f"class {i}" for i in range(count)]
