"""A folder of images and masks from another generator than the built-in shapes.

    python benchmarks/make_other_shapes.py --out other_shapes/ --count 64

A model trained on the built-in shapes (tinyseg/data/shapes.py) has only
ever seen upright shapes of one size range on a striped, noisy background,
all 64 x 64. This draws the same four classes (background, disc, square,
triangle) another way, with Pillow's polygons instead of NumPy masks:
squares and triangles turned by any angle, shapes from small to large,
a background of colour gradients, blotches and waves of any angle and
period instead of the built-in stripes,
and images of 96 x 80 pixels (not a multiple of the U-Net's 8). So it is
data of the same task that the model never saw: a stand-in for "a folder
of your own". It writes OUT/images/NNN.png, OUT/masks/NNN.png (class
indices 0..3) and OUT/classes.txt.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.files import write_atomically, write_png  # noqa: E402

CLASSES = ("background", "disc", "square", "triangle")
HEIGHT, WIDTH = 80, 96


def background(rng) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: a colour gradient, soft blotches, and waves of any angle and period."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] / max(HEIGHT, WIDTH)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.cos(angle) * rows + np.sin(angle) * cols                       # (H, W)
    picture = rng.random(3) + (rng.random(3) - 0.5) * ramp[..., None]        # (H, W, 3)
    for _ in range(3):
        centre, width = rng.random(2), rng.uniform(0.05, 0.3)
        blotch = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * width ** 2))
        picture += (rng.random(3) - 0.5) * blotch[..., None]
    angle, period = rng.uniform(0, math.pi), rng.uniform(0.05, 0.15)
    waves = np.sin(2 * math.pi * (np.cos(angle) * rows + np.sin(angle) * cols) / period)
    picture += (rng.random(3) - 0.5) * waves[..., None]
    return np.clip(picture, 0, 1)


def outline(kind: int, centre, radius: float, turn: float) -> list:
    """The polygon of a shape of class `kind` (1 disc, 2 square, 3 triangle), as (x, y) points."""
    corners = {1: 48, 2: 4, 3: 3}[kind]
    reach = radius * {1: 1.0, 2: math.sqrt(math.pi / 2), 3: 1.56}[kind]      # about equal areas
    return [(centre[1] + reach * math.cos(turn + 2 * math.pi * i / corners),
             centre[0] + reach * math.sin(turn + 2 * math.pi * i / corners)) for i in range(corners)]


def draw_example(rng):
    """(image uint8 (H, W, 3), mask uint8 (H, W)) with 2 to 4 shapes."""
    from PIL import Image, ImageDraw
    image = Image.fromarray(np.round(background(rng) * 255).astype(np.uint8))
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    for _ in range(rng.integers(2, 5)):
        kind = int(rng.integers(1, 4))
        radius = rng.uniform(6, 16)
        centre = (rng.uniform(radius, HEIGHT - radius), rng.uniform(radius, WIDTH - radius))
        points = outline(kind, centre, radius, rng.uniform(0, 2 * math.pi))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        ImageDraw.Draw(image).polygon(points, fill=colour)
        ImageDraw.Draw(mask).polygon(points, fill=kind)
    noisy = np.asarray(image) + rng.normal(scale=12, size=(HEIGHT, WIDTH, 3))        # shapes too
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8), np.asarray(mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="other_shapes")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from PIL import Image
    rng = np.random.default_rng(args.seed)
    for index in range(args.count):
        image, mask = draw_example(rng)
        write_png(os.path.join(args.out, "images", f"{index:03d}.png"), Image.fromarray(image))
        write_png(os.path.join(args.out, "masks", f"{index:03d}.png"), Image.fromarray(mask))
    write_atomically(os.path.join(args.out, "classes.txt"), ("\n".join(CLASSES) + "\n").encode())
    print(f"wrote {args.count} images and masks of {WIDTH} x {HEIGHT} into {os.path.join(args.out, '')}")


if __name__ == "__main__":
    main()
