"""The pictures of `tinyseg inspect`: titled panels side by side, one PNG each.

    save_panels("out/entropy.png", {"image": rgb, "entropy": heat(h / h_max)})

Every panel is an (h, w, 3) uint8 picture; the panels of one file are
drawn in a row on the grid background of visualize.save_grid, each under
its title, enlarged (nearest) so that cells are at least MIN_CELL pixels
on their longer side.
Numbers become colours in two ways:

    grey(p)     0 black .. 1 white, for probabilities (a fixed scale: 0.5 is always mid-grey)
    heat(v)     0 black -> red -> yellow -> 1 white, for a gradient's strength or an entropy

Needs Pillow (as every PNG tinyseg writes); each file goes through
files.write_png, whole or not at all.
"""

from __future__ import annotations

import numpy as np

from tinyseg.files import write_png
from tinyseg.visualize import colorize, draw_cells, draw_titles, import_pillow, to_display

MIN_CELL = 224                  # pixels: small pictures are enlarged (nearest) to at least this
PIXEL_COLOUR = (0, 255, 0)      # the inspected pixel
EFFECTIVE_COLOUR = (0, 255, 0)  # the square holding 90% of the gradient
FIELD_COLOUR = (0, 200, 255)    # the theoretical receptive field


def grey(values: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 grey, 0 black and 1 white."""
    level = np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)
    return np.repeat(level[..., None], 3, axis=2)


def heat(values: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 on the "hot" ramp: black, red, yellow, white."""
    v = np.clip(values, 0, 1)[..., None] * 3                       # (h, w, 1) in [0, 3]
    ramp = np.clip(np.concatenate([v, v - 1, v - 2], axis=-1), 0, 1)  # red first, then green, blue
    return np.round(ramp * 255).astype(np.uint8)


def save_panels(path, panels: dict) -> None:
    """Write {title: (h, w, 3) uint8 picture} as one PNG: the panels in a row, titled."""
    Image = import_pillow()
    height = max(picture.shape[0] for picture in panels.values())
    width = max(picture.shape[1] for picture in panels.values())
    scale = max(1, -(-MIN_CELL // max(height, width)))
    cells = draw_cells({title: [picture] for title, picture in panels.items()}, 1,
                       height * scale, width * scale, scale)
    picture = Image.fromarray(cells)
    draw_titles(picture, list(panels), width * scale)
    write_png(path, picture)


def square(picture: np.ndarray, centre: tuple, radius: tuple, colour) -> np.ndarray:
    """A copy of (h, w, 3) `picture` with the outline of rows centre-r..centre+r (and columns) drawn.

    radius: (above, below, left, right) pixels from the centre; the parts
    of the outline outside the picture are left out.
    """
    out = picture.copy()
    (y, x), (up, down, left, right) = centre, radius
    top, bottom, first, last = y - up, y + down, x - left, x + right
    height, width = out.shape[:2]
    rows = slice(max(top, 0), min(bottom, height - 1) + 1)
    cols = slice(max(first, 0), min(last, width - 1) + 1)
    for row in (top, bottom):
        if 0 <= row < height:
            out[row, cols] = colour
    for col in (first, last):
        if 0 <= col < width:
            out[rows, col] = colour
    return out


def marked(picture: np.ndarray, pixel: tuple, colour=PIXEL_COLOUR) -> np.ndarray:
    """A copy of `picture` with a small cross (arms of 2 pixels) at `pixel`."""
    out = picture.copy()
    y, x = pixel
    out[max(y - 2, 0):y + 3, x] = colour
    out[y, max(x - 2, 0):x + 3] = colour
    return out


def saliency_panels(image: np.ndarray, strength: np.ndarray, centre: tuple, effective: int | None,
                    field: tuple) -> dict:
    """The three panels of saliency.png, over the window the gradient was computed on.

    image (C, h, w) as read; strength (h, w) |gradient|; centre: the pixel in
    the window; effective: the 90% radius; field: the theoretical (rows, cols).
    The gradient is drawn as the square root of strength / its largest value,
    so that its faint tail, far from the pixel, is still visible.
    """
    photo = to_display(image)                                                  # (h, w, 3)
    top = float(strength.max())
    gradient = heat(np.sqrt(strength / top)) if top > 0 else heat(np.zeros(strength.shape))
    if effective is not None:
        gradient = square(gradient, centre, (effective,) * 4, EFFECTIVE_COLOUR)
    dimmed = (photo // 2).astype(np.uint8)
    reach = ((field[0] - 1) // 2, field[0] // 2, (field[1] - 1) // 2, field[1] // 2)
    fields = square(dimmed, centre, reach, FIELD_COLOUR)
    if effective is not None:
        fields = square(fields, centre, (effective,) * 4, EFFECTIVE_COLOUR)
    radius = "-" if effective is None else f"{effective} px"
    outside = (centre[0] - reach[0] < 0 and centre[0] + reach[1] >= photo.shape[0]
               and centre[1] - reach[2] < 0 and centre[1] + reach[3] >= photo.shape[1])
    field_title = f"field {field[0]}x{field[1]} " + ("beyond the picture" if outside else "(blue)")
    return {"image, pixel marked": marked(photo, centre),
            f"|gradient|, 90% within {radius}": marked(gradient, centre),
            f"{field_title}, 90% (green)": marked(fields, centre)}


def probability_panels(probabilities: np.ndarray, class_names) -> dict:
    """One grey panel per class: p(class) at each pixel, 0 black and 1 white."""
    return {f"p({name})": grey(p) for name, p in zip(class_names, probabilities)}


def entropy_panels(image: np.ndarray, labels: np.ndarray, entropies: np.ndarray, classes: int) -> dict:
    """image | predicted labels | entropy on the heat ramp from 0 (black) to log K (white)."""
    most = np.log(classes) if classes > 1 else 1.0
    return {"image": to_display(image), "prediction": colorize(labels.astype(np.int64)),
            f"entropy, 0 .. log {classes} = {most:.2f}": heat(entropies / most)}


def feature_panel(stage: str, shape: tuple, grid: np.ndarray) -> dict:
    """{title "STAGE (1, C, h, w)": the channel grid in grey}: one stage's feature maps."""
    return {f"{stage}  {tuple(shape)}": np.repeat(grid[..., None], 3, axis=2)}
