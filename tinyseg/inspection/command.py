"""The `inspect` command's work: read the image, draw the pictures, write the summary.

    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/
    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/ --pixel 30 41

writes into --out (report.py computes the numbers, pictures.py draws them):

    features_01_encoder.0.png ...  one per stage the model names (model.stages()): every
                                   channel of that stage's output, its shape in the title
    saliency.png                   the image | the gradient of one pixel's winning score |
                                   the square holding 90% of it inside the theoretical field
    probabilities.png              each class's softmax probability at every pixel
    entropy.png                    the image | the prediction | the entropy at every pixel

and prints each stage's shape, the pixel and its class, the effective field
against the theoretical one, and the mean entropy on class boundaries and
elsewhere. The image is read as `predict` reads it (a grey image repeated
for a colour model; normalised as in training) and first resized by the
training --scale, if any: pictures and --pixel are in that resized image.

Large images: feature maps are those of the middle FEATURE_SIDE x
FEATURE_SIDE window (the printed rows and columns), the gradient is taken
on a tile around the pixel, and the probability pictures keep every s-th
pixel (at most PICTURE_SIDE a side), so memory stays that of one tile.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tinyseg.data import DataError, read_image
from tinyseg.files import remove_temporaries
from tinyseg.inspection.feature_maps import FEATURE_SIDE, channel_grid
from tinyseg.inspection.pictures import (entropy_panels, feature_panel, probability_panels,
                                         saliency_panels, save_panels)
from tinyseg.inspection.report import Inspection
from tinyseg.inspection.saliency import SHARE
from tinyseg.visualize import import_pillow, thumbnail

PICTURE_SIDE = 512       # probabilities.png and entropy.png keep every s-th pixel above this


def read_input(path: str, in_channels: int):
    """The (C, H, W) image at `path` as the model takes it, or ValueError in one line naming it."""
    from tinyseg.predict import channel_problem, file_problem, image_for_model
    what = file_problem(Path(path))
    if what:
        raise ValueError(f"{path}: {what}")
    try:
        image = read_image(path)                                    # (C, H, W) in [0, 1]
    except DataError as error:
        raise ValueError("; ".join(f"{where}: {what}" for where, what in error.problems)) from None
    what = channel_problem(image.shape[0], in_channels)
    if what:
        raise ValueError(f"{path}: {what}")
    return image_for_model(image, in_channels, path)


def check_pixel(pixel, size: tuple) -> None:
    """ValueError naming --pixel unless (Y, X) lies in an image of `size` (H, W)."""
    (y, x), (height, width) = pixel, size
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"--pixel {y} {x} is outside the {height} x {width} image: Y must be "
                         f"0..{height - 1} and X 0..{width - 1}")


def feature_file(index: int, stage: str) -> str:
    """features_01_encoder.0.png: numbered in forward order, so a file listing is the pass."""
    return f"features_{index + 1:02d}_{stage}.png"


def write_pictures(out: str, image, seen: Inspection, class_names) -> list[str]:
    """Every picture of one inspection into folder `out`; returns the file names, in order."""
    import_pillow()
    os.makedirs(out, exist_ok=True)
    remove_temporaries(out)                          # what a killed inspect left half-written
    pictures = {}
    for index, (stage, maps) in enumerate(seen.feature_maps.items()):
        pictures[feature_file(index, stage)] = feature_panel(stage, (1,) + maps.shape, channel_grid(maps))
    rows, cols = seen.gradient.window
    pictures["saliency.png"] = saliency_panels(image[:, rows, cols], seen.gradient.strength,
                                               seen.gradient.centre, seen.effective_radius, seen.field)
    pictures["probabilities.png"] = probability_panels(thumbnail(seen.probabilities, PICTURE_SIDE),
                                                       class_names)
    pictures["entropy.png"] = entropy_panels(thumbnail(image, PICTURE_SIDE),
                                             thumbnail(seen.labels, PICTURE_SIDE),
                                             thumbnail(seen.entropy, PICTURE_SIDE), len(class_names))
    for name, panels in pictures.items():
        save_panels(os.path.join(out, name), panels)
    return list(pictures)


def summary(model, path: str, image, seen: Inspection, class_names) -> str:
    """The lines inspect prints: stages and shapes, the pixel, the fields, the entropy."""
    height, width = image.shape[1:]
    rows, cols = seen.feature_window
    lines = [f"{model.name} on {path}: {height} x {width}, {image.shape[0]} channel(s)"]
    if (rows.stop - rows.start, cols.stop - cols.start) == (height, width):
        lines.append("feature maps of the whole image:")
    else:
        lines.append(f"feature maps of the middle {FEATURE_SIDE} x {FEATURE_SIDE} (rows "
                     f"{rows.start}..{rows.stop - 1}, columns {cols.start}..{cols.stop - 1}):")
    for index, (stage, maps) in enumerate(seen.feature_maps.items()):
        lines.append(f"  {stage:<14}{str((1,) + maps.shape):<22}{feature_file(index, stage)}")
    lines += pixel_lines(seen, class_names)
    scale = f"(0 is certain, log {len(class_names)} = {math.log(len(class_names)):.3f} knows nothing)"
    if math.isnan(seen.boundary_entropy):
        lines.append(f"uncertainty: the model sees one class only; mean entropy "
                     f"{seen.interior_entropy:.3f} {scale}")
    else:
        lines.append(f"uncertainty: mean entropy {seen.boundary_entropy:.3f} on class-boundary pixels, "
                     f"{seen.interior_entropy:.3f} elsewhere {scale}")
    return "\n".join(lines)


def pixel_lines(seen: Inspection, class_names) -> list[str]:
    """The pixel, how it was chosen, its class, and its effective against its theoretical field."""
    gradient = seen.gradient
    (y, x), name = gradient.pixel, class_names[gradient.label]
    how = {"given": "given by --pixel", "boundary": "on a class boundary, the one nearest the centre",
           "centre": "the centre (the model sees one class only)"}[seen.chosen]
    lines = [f"pixel ({y}, {x}), {how}: class {gradient.label} ({name}), "
             f"p = {seen.probabilities[gradient.label, y, x]:.3f}"]
    field = seen.field
    if seen.effective_radius is None:
        lines.append("  the gradient of its score is zero: no input pixel moves it")
        return lines
    side = 2 * seen.effective_radius + 1
    lines.append(f"  effective field: {SHARE:.0%} of the gradient within {seen.effective_radius} px "
                 f"(a {side} x {side} square); theoretical field {field[0]} x {field[1]} "
                 f"(complexity.receptive_field): {side / max(field):.2f} of its side")
    return lines
