"""Segment image files: for each input, an index-PNG mask and a colour overlay.

    python -m tinyseg predict --checkpoint runs/unet/best.npz a.png b.jpg --out masks/

Three steps, in this order:

1. Check every input before writing anything (`check_inputs`): a missing
   file, a folder, a type other than PNG/JPEG/TIFF, a file that is not an
   image or is cut short, a colour image for a grey model. Every problem
   of every input goes into ONE DataError, and nothing is written. Each
   file is read and dropped, so only one image is in memory at a time. A
   grey image for a colour model is fine: it is repeated to three channels.
2. Name the outputs (`output_stems`): STEM_mask.png and STEM_overlay.png,
   where STEM is the input's name without its suffix, unless two inputs
   share it (a.png and a.jpg, or x/a.png and y/a.png); those get the
   shortest longer name that tells them apart: a.png_mask.png and
   a.jpg_mask.png, or x_a_mask.png and y_a_mask.png. No input's output
   overwrites another's.
3. Read each image again and label it with the checkpoint's Predictor
   (predictor.py): normalised as training did, resized by the training
   --scale and back, tile by tile for images larger than a tile, with
   exactly the labels of a whole-image pass (tiling.py), in bounded memory.
   Each output is written whole or not at all (files.py).
   With --probs, STEM_probs.npy holds the class probabilities too: float16
   (K, H, W), at the image's own size, each pixel summing to 1 (to float16's
   rounding, about 1e-3); np.load reads it, and the mask is its argmax (the
   labels of predict without --probs, except that with a training --scale
   the probabilities are resized bilinearly before the argmax, not the
   labels by nearest). With --tta flip, probabilities and labels are the
   mean over the image's 4 flips (predictor.py).

Images are read as the training folders are (values in [0, 1], EXIF
orientation applied; tinyseg.data.read_image).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from tinyseg.data import DataError, read_image
from tinyseg.data.folder import IMAGE_SUFFIXES
from tinyseg.data.images import import_pillow
from tinyseg.data.scan import read_or_note
from tinyseg.files import remove_temporaries, write_atomically
from tinyseg.visualize import save_mask_png, save_overlay_png


def image_for_model(image: np.ndarray, in_channels: int, path: str) -> np.ndarray:
    """(C, H, W) image with the channel count the model expects: grey is repeated for colour."""
    if image.shape[0] == in_channels:
        return image
    if image.shape[0] == 1:
        return np.repeat(image, in_channels, axis=0)
    raise ValueError(f"predict: {path} has {image.shape[0]} channels but the model expects {in_channels}")


def channel_problem(channels: int, in_channels: int) -> str | None:
    """What is wrong with giving an image of `channels` channels to the model, or None."""
    if channels == in_channels or channels == 1:
        return None
    kind = {1: "grey", 3: "colour"}.get(channels, f"{channels}-channel")
    model = {1: "a grey", 3: "a colour"}.get(in_channels, f"a {in_channels}-channel")
    return f"a {kind} image, but the model takes {model} image ({in_channels} channel(s))"


def file_problem(path: Path) -> str | None:
    """What keeps `path` from being an image file predict reads, before opening it, or None."""
    if path.is_dir():
        return "a folder, not an image file (give the files, e.g. folder/*.png)"
    if not path.exists():
        return "no such file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return (f"unsupported type {path.suffix or '(no suffix)'!r}; "
                f"predict reads {', '.join(IMAGE_SUFFIXES)}")
    return None


def check_inputs(inputs, in_channels: int, out: str | None = None) -> tuple[list[Path], list[tuple]]:
    """(the input files, each listed once; their (H, W)), or ONE DataError with every problem.

    Reads each file fully (a truncated JPEG fails only when decoded) and
    drops it before the next. A file listed twice is predicted once.
    out: the output folder, which must be a folder if it exists.
    """
    problems, paths, sizes, seen = [], [], [], set()
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        problems.append((out, "--out exists and is not a folder"))
    for path in map(Path, inputs):
        what = file_problem(path)
        if what:
            problems.append((path, what))
            continue
        if path.resolve() in seen:
            continue                                                      # listed twice: once is enough
        image = read_or_note(read_image, path, problems)                  # (C, H, W), then dropped
        if image is None:
            continue
        what = channel_problem(image.shape[0], in_channels)
        if what:
            problems.append((path, what))
        seen.add(path.resolve())
        paths.append(path)
        sizes.append(image.shape[1:])
    if problems:
        raise DataError("the inputs of predict (nothing was written)", problems)
    return paths, sizes


def folders(path: Path) -> tuple[str, ...]:
    """The folders above a file, outermost first, without the root: /w/x/a.png -> (w, x)."""
    return path.resolve().parent.parts[1:]


def stem_at(path: Path, level: int) -> str:
    """The output stem of `path` at a level of detail: a, a.png, x_a, x_a.png, w_x_a, ..."""
    above = folders(path)
    shown = list(above[max(0, len(above) - level // 2):]) if level >= 2 else []
    return "_".join(shown + [path.name if level % 2 else path.stem])


def output_stems(paths: list[Path]) -> list[str]:
    """A distinct output stem for each input: its own stem, unless another input has it too.

    Inputs whose stems clash (case aside, for case-blind file systems) take
    the next level of detail, stem_at(path, level + 1), until no two clash:
    a.png + a.jpg -> a.png, a.jpg;  x/a.png + y/a.png -> x_a, y_a. Inputs
    that still clash with every folder shown get their position appended.
    """
    levels = [0] * len(paths)
    while True:
        stems = [stem_at(path, level) for path, level in zip(paths, levels)]
        keys = [stem.lower() for stem in stems]
        clashing = [i for i, key in enumerate(keys) if keys.count(key) > 1]
        if not clashing:
            return stems
        deepest = [2 * len(folders(path)) + 1 for path in paths]
        if all(levels[i] >= deepest[i] for i in clashing):
            return [f"{stem}_{i + 1}" if i in clashing else stem for i, stem in enumerate(stems)]
        for i in clashing:
            levels[i] = min(levels[i] + 1, deepest[i])


def predict_files(predictor, inputs, out: str, palette=None, probs: bool = False,
                  tta: str = "none") -> list[tuple]:
    """Write OUT/STEM_mask.png (class indices) and OUT/STEM_overlay.png for each input.

    predictor: a Predictor (the model, its normalisation, device, tiling and
    training --scale; Predictor.from_checkpoint). palette: (256, 3) uint8
    colours of the classes (the user's colour table, if training had one;
    default visualize.PALETTE), stored in the mask PNG and used for the overlay.
    probs: write OUT/STEM_probs.npy too (save_probabilities). tta: "none", or
    "flip" for the mean over 4 flips (Predictor.probabilities).
    Returns (input, mask file, overlay file[, probabilities file]) for each input, in order.
    Raises DataError listing every bad input before writing anything. Each
    file is written whole or not at all (files.py): an interrupted predict
    leaves complete outputs for the inputs it finished and nothing else.
    """
    in_channels = predictor.model.in_channels
    paths, _ = check_inputs(inputs, in_channels, out)
    import_pillow()
    os.makedirs(out, exist_ok=True)
    remove_temporaries(out)                          # what a killed predict left half-written
    written = []
    for path, stem in zip(paths, output_stems(paths)):
        image = image_for_model(read_image(path), in_channels, str(path))   # (C, H, W) in [0, 1]
        files = [os.path.join(out, stem + "_mask.png"), os.path.join(out, stem + "_overlay.png")]
        if probs:
            probabilities = predictor.probabilities_at_scale(image, tta)    # (K, H, W)
            labels = probabilities.argmax(axis=0)
            files.append(os.path.join(out, stem + "_probs.npy"))
            save_probabilities(files[2], probabilities)
        else:
            labels = predictor.labels_at_scale(image, tta)                  # (H, W)
        save_mask_png(files[0], labels.astype(np.uint8), palette)
        save_overlay_png(files[1], image, labels, palette)
        written.append((str(path), *files))
    return written


def save_probabilities(path: str, probabilities: np.ndarray) -> None:
    """(K, H, W) probabilities as a float16 .npy file, written whole or not at all."""
    buffer = io.BytesIO()
    np.save(buffer, probabilities.astype(np.float16))
    write_atomically(path, buffer.getvalue())
