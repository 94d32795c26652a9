"""Pictures of masks and predictions: colours, overlays, grids, training curves.

A mask is a grid of class indices; to look at it, each index gets a colour
from one fixed PALETTE, the same in every picture tinyseg draws:

    mask          colorize(mask)
    0 0 1         black black red
    0 2 1         black green red
    255 2 2       white green green        (255 = ignore, drawn white)

Saving a mask with `save_mask_png` keeps the indices themselves: the PNG is
a palette ("P" mode) image whose pixel values are the class numbers and
whose embedded palette is PALETTE. Image viewers show the colours; reading
it back (Pillow, or tinyseg.data.load_folder) gives the indices.

Model outputs are compared in a grid, one row per image:

    image | truth | U-Net | FCN | naive          (save_grid with preds as a dict)

Images from a dataset are (C, H, W) floats in any range; for display each
is stretched so its own darkest pixel is black and its brightest is white.

Pillow is needed to write PNGs and matplotlib for plot_history; both are
imported only when those functions run.
"""

from __future__ import annotations

import colorsys
import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tinyseg.files import write_atomically, write_png

IGNORE_INDEX = 255
IGNORE_COLOUR = (255, 255, 255)
FIRST_COLOURS = [            # class 0 black, then 19 colours that are easy to tell apart
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
    (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40), (128, 128, 128),
    (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
]
GAP = 4                      # pixels between the cells of a grid
TITLE_HEIGHT = 14            # the band of column titles at the top of a grid
LEGEND_ROW = 14              # one line of the legend under a grid
LEGEND_ENTRY_WIDTH = 110     # one "[colour] name" entry of the legend
BACKGROUND = (40, 40, 40)    # grid background
TEXT = (235, 235, 235)


def make_palette() -> np.ndarray:
    """The (256, 3) uint8 colour table: FIRST_COLOURS, then spread-out hues, 255 white."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:len(FIRST_COLOURS)] = FIRST_COLOURS
    for index in range(len(FIRST_COLOURS), IGNORE_INDEX):
        hue = (index * 0.618034) % 1.0                       # golden-ratio steps never repeat
        saturation = 0.55 + 0.4 * ((index * 7) % 3) / 2
        value = 0.65 + 0.3 * ((index * 5) % 2)
        palette[index] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value)]
    palette[IGNORE_INDEX] = IGNORE_COLOUR
    return palette


PALETTE = make_palette()


def class_palette(colors=None) -> np.ndarray:
    """(256, 3) uint8: PALETTE with its first rows replaced by `colors` ((K, 3), a dataset's own).

    predict writes its masks and overlays in the user's colours when training
    read colour-coded masks (--mask-colors); classes beyond the table keep PALETTE's.
    """
    palette = PALETTE.copy()
    if colors is not None:
        palette[:len(colors)] = np.asarray(colors, dtype=np.uint8)
    return palette


def import_pillow():
    """The PIL.Image module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("writing PNG files needs Pillow: pip install 'tinyseg[images]'") from error
    return Image


def check_mask(mask, name: str = "mask") -> np.ndarray:
    """`mask` as an integer array of labels 0..255, or a ValueError."""
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {mask.dtype}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"{name} labels must be 0..255, got {mask.min()}..{mask.max()}")
    return mask


def colorize(mask, palette=None) -> np.ndarray:
    """Class indices (H, W) -> colours (H, W, 3) uint8, by PALETTE (any shape (...) -> (..., 3)).

    palette: another (256, 3) uint8 colour table, e.g. the user's own class colours.
    """
    return (PALETTE if palette is None else palette)[check_mask(mask)]


def to_display(image) -> np.ndarray:
    """An image for the screen: (C, H, W) with C = 1 or 3, or (H, W) -> (H, W, 3) uint8.

    Float images are stretched min-max, per image: the darkest pixel becomes
    0 and the brightest 255 (a constant image becomes black). uint8 images are
    kept as they are.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"to_display: image must be (C, H, W) with C = 1 or 3, or (H, W); got {image.shape}")
    if image.dtype != np.uint8:
        low, high = float(image.min()), float(image.max())
        stretched = (image - low) / (high - low) if high > low else np.zeros(image.shape)
        image = np.round(stretched * 255).astype(np.uint8)
    return np.repeat(image, 3 // image.shape[0], axis=0).transpose(1, 2, 0)   # (H, W, 3)


def thumbnail(array: np.ndarray, largest: int = 256) -> np.ndarray:
    """An image (C, H, W) or mask (H, W) cut to at most `largest` pixels a side by keeping every s-th.

    Every kept pixel is one of the array's own (no mixing), so a mask stays labels.
    """
    step = -(-max(array.shape[-2:]) // largest)
    return array[..., ::step, ::step] if step > 1 else array


def overlay(image, mask, alpha: float = 0.5, palette=None) -> np.ndarray:
    """The image with the mask's colours laid over it: (H, W, 3) uint8.

    Each labelled pixel becomes (1 - alpha) * image + alpha * colour of its
    class. Background (0) and ignored (255) pixels show the image unchanged.
    """
    picture = to_display(image).astype(np.float64)                  # (H, W, 3)
    mask = check_mask(mask)
    if mask.shape != picture.shape[:2]:
        raise ValueError(f"overlay: mask must be {picture.shape[:2]} (the image's H, W), got {mask.shape}")
    labelled = ((mask != 0) & (mask != IGNORE_INDEX))[..., None]    # (H, W, 1)
    blended = (1 - alpha) * picture + alpha * colorize(mask, palette)
    return np.round(np.where(labelled, blended, picture)).astype(np.uint8)


def save_mask_png(path, mask, palette=None) -> None:
    """Save class indices (H, W) as a palette PNG that reads back as the same indices.

    The PNG's colour table is PALETTE, or `palette` ((256, 3) uint8, e.g. the
    user's class colours): viewers show those colours, readers get the indices.
    """
    Image = import_pillow()
    mask = check_mask(mask)
    if mask.ndim != 2:
        raise ValueError(f"save_mask_png: mask must be (H, W), got shape {mask.shape}")
    height, width = mask.shape
    picture = Image.frombytes("P", (width, height), mask.astype(np.uint8).tobytes())
    picture.putpalette((PALETTE if palette is None else np.asarray(palette, np.uint8)).ravel().tolist())
    write_png(path, picture)


def save_overlay_png(path, image, mask, palette=None) -> None:
    """Save the image with the mask's colours laid over it (`overlay`) as an RGB PNG."""
    Image = import_pillow()
    write_png(path, Image.fromarray(overlay(image, mask, palette=palette)))


def save_grid(path, images, truths, preds=None, class_names: Sequence[str] | None = None,
              scale: int | None = None) -> Path:
    """Save a PNG grid, one row per image: image | truth | prediction(s).

    images: (N, C, H, W) array or list of (C, H, W); truths: N masks (H, W).
    preds: None (no prediction column), N masks (one column, "prediction"),
        or a dict {name: N masks}, one titled column per entry, e.g.
        {"U-Net": unet_preds, "FCN": fcn_preds}, to compare models side by side.
    class_names: if given, a colour legend is drawn under the grid.
    scale: how many times to enlarge every cell; default: enough to make a
        cell at least 96 pixels, e.g. 2 for 64x64 images.

    The PNG is (with cells of ch x cw = H*scale x W*scale, k columns, N rows)
        width  = k * cw + (k + 1) * GAP
        height = TITLE_HEIGHT + N * ch + (N + 1) * GAP  (+ the legend, if any)
    """
    Image = import_pillow()
    columns = grid_columns(images, truths, preds)
    pictures = [picture for column in columns.values() for picture in column]
    if not pictures:
        raise ValueError("save_grid: no images to draw")
    height = max(picture.shape[0] for picture in pictures)
    width = max(picture.shape[1] for picture in pictures)
    scale = scale or max(1, -(-96 // max(height, width)))
    grid = draw_cells(columns, len(images), height * scale, width * scale, scale)
    picture = Image.fromarray(grid)
    draw_titles(picture, list(columns), width * scale)
    if class_names is not None:
        picture = add_legend(Image, picture, class_names)
    write_png(path, picture)
    return Path(path)


def grid_columns(images, truths, preds) -> dict[str, list[np.ndarray]]:
    """{column title: N pictures (H, W, 3) uint8}, checking that every column has N entries."""
    rows = len(images)
    if isinstance(preds, Mapping):
        named_preds = dict(preds)
    elif preds is None:
        named_preds = {}
    else:
        named_preds = {"prediction": preds}
    columns = {"image": [to_display(image) for image in images]}
    for title, masks in {"truth": truths, **named_preds}.items():
        if len(masks) != rows:
            raise ValueError(f"save_grid: {len(masks)} masks in {title!r} for {rows} images")
        columns[title] = [colorize(mask) for mask in masks]
    return columns


def draw_cells(columns: dict, rows: int, cell_height: int, cell_width: int, scale: int) -> np.ndarray:
    """The grid without text: (height, width, 3) uint8, each picture enlarged `scale` times."""
    count = len(columns)
    grid = np.empty((TITLE_HEIGHT + rows * cell_height + (rows + 1) * GAP,
                     count * cell_width + (count + 1) * GAP, 3), dtype=np.uint8)
    grid[:] = BACKGROUND
    for col, pictures in enumerate(columns.values()):
        for row, picture in enumerate(pictures):
            big = picture.repeat(scale, axis=0).repeat(scale, axis=1)        # nearest-neighbour zoom
            top = TITLE_HEIGHT + GAP + row * (cell_height + GAP)
            left = GAP + col * (cell_width + GAP)
            grid[top:top + big.shape[0], left:left + big.shape[1]] = big
    return grid


def draw_titles(picture, titles: list[str], cell_width: int) -> None:
    """Write each column's title in the band at the top."""
    from PIL import ImageDraw
    draw = ImageDraw.Draw(picture)
    for col, title in enumerate(titles):
        draw.text((GAP + col * (cell_width + GAP), 1), str(title), fill=TEXT)


def add_legend(Image, picture, class_names: Sequence[str]):
    """A copy of `picture` with rows of "[colour] class name" entries added below."""
    from PIL import ImageDraw
    per_row = max(1, picture.width // LEGEND_ENTRY_WIDTH)
    lines = -(-len(class_names) // per_row)
    framed = Image.new("RGB", (picture.width, picture.height + lines * LEGEND_ROW + GAP), BACKGROUND)
    framed.paste(picture, (0, 0))
    draw = ImageDraw.Draw(framed)
    for index, name in enumerate(class_names):
        left = GAP + (index % per_row) * LEGEND_ENTRY_WIDTH
        top = picture.height + (index // per_row) * LEGEND_ROW
        draw.rectangle([left, top + 2, left + 9, top + 11], fill=tuple(int(c) for c in PALETTE[index]))
        draw.text((left + 13, top + 1), f"{index} {name}", fill=TEXT)
    return framed


def plot_history(path, history) -> bool:
    """Save a PNG of the training curves: losses, validation mIoU and, if recorded, gradient norms.

    history: a dict of per-epoch lists, or a list of per-epoch dicts, with the
        keys "train_loss", "val_loss" and "val_miou" (any may be missing;
        None or NaN leaves a gap), and optionally "epoch". Keys
        "grad_norm/LAYER" (train records them: gradient_norms.py) add a third
        panel, one line per layer on a log scale, to show vanishing or
        exploding gradients.
    Returns True if the plot was saved; False (with a printed note) when
    matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        print("plot_history: matplotlib is not installed, so no plot was drawn (pip install 'tinyseg[plot]')")
        return False
    curves = history_columns(history)
    length = max((len(values) for values in curves.values()), default=0)
    epochs = curves.pop("epoch", np.arange(1, length + 1))
    norms = {key.split("/", 1)[1]: values for key, values in curves.items() if key.startswith("grad_norm/")}
    figure = Figure(figsize=(15, 3.5) if norms else (9, 3.5))
    figure.subplots_adjust(left=0.05 if norms else 0.07, right=0.9 if norms else 0.98, bottom=0.15,
                           top=0.9, wspace=0.25)
    all_axes = figure.subplots(1, 3 if norms else 2)
    loss_axes, iou_axes = all_axes[:2]
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        if key in curves:
            loss_axes.plot(epochs[:len(curves[key])], curves[key], marker=".", label=label)
    if "val_miou" in curves:
        iou_axes.plot(epochs[:len(curves["val_miou"])], curves["val_miou"], marker=".", color="C2",
                      label="val mIoU")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    iou_axes.set(xlabel="epoch", ylabel="mIoU", title="validation mean IoU", ylim=(0, 1))
    for axes in all_axes:
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))    # whole epochs
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    if norms:
        plot_gradient_norms(all_axes[2], epochs, norms)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomically(path, buffer.getvalue())
    return True


def plot_gradient_norms(axes, epochs, norms: dict) -> None:
    """One line per layer, in the order of the model's parameters (dark first, viridis), log scale."""
    from matplotlib import colormaps
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(norms)))
    for colour, (layer, values) in zip(colours, norms.items()):
        axes.plot(epochs[:len(values)], values, marker=".", color=colour, label=layer)
    axes.set(xlabel="epoch", ylabel="mean ||gradient|| per step", yscale="log",
             title="gradient norm per layer")
    axes.legend(fontsize="x-small", ncol=1 + len(norms) // 18, loc="upper left", bbox_to_anchor=(1.01, 1))


def history_columns(history) -> dict[str, np.ndarray]:
    """{key: float array per epoch} from a dict of lists or a list of dicts; None -> NaN."""
    if not isinstance(history, Mapping):
        keys = dict.fromkeys(key for entry in history for key in entry)     # in order of appearance
        history = {key: [entry.get(key) for entry in history] for key in keys}
    return {key: np.array([np.nan if v is None else float(v) for v in values])
            for key, values in history.items()
            if key in ("epoch", "train_loss", "val_loss", "val_miou") or key.startswith("grad_norm/")}


def confusion_cell_texts(matrix) -> tuple[list[list[str]], list[list[str]]]:
    """The numbers save_confusion_matrix writes in its cells: (counts, row-normalised shares).

    counts[t][p] = str(M[t, p]); shares[t][p] = M[t, p] / (row t's sum) to
    two decimals, "-" for a class absent from the truth (metrics.row_normalized).
    """
    from tinyseg.metrics import row_normalized
    matrix = np.asarray(matrix, dtype=np.int64)
    counts = [[str(int(value)) for value in row] for row in matrix]
    shares = [["-" if np.isnan(value) else f"{value:.2f}" for value in row] for row in row_normalized(matrix)]
    return counts, shares


def save_confusion_matrix(path, matrix, class_names: Sequence[str]):
    """A PNG of the confusion matrix: pixel counts on the left, row-normalised on the right.

    Rows are the true classes, columns the predicted ones; each cell holds
    its number (confusion_cell_texts), its colour the row-normalised share.
    Returns the cell texts as drawn, read back from the figure (counts,
    shares), so a test can compare them with the matrix; None, with a
    printed note, when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("note: matplotlib is not installed, so no confusion-matrix picture was drawn "
              "(pip install 'tinyseg[plot]')")
        return None
    count = len(class_names)
    counts, shares = confusion_cell_texts(matrix)
    colours = np.nan_to_num(np.asarray([[np.nan if s == "-" else float(s) for s in row] for row in shares]))
    side = max(3.5, 0.6 * count + 1.5)
    figure = Figure(figsize=(2 * side + 1, side))
    figure.subplots_adjust(wspace=0.45)
    drawn = []
    for axes, texts, title in zip(figure.subplots(1, 2), (counts, shares),
                                  ("pixels", "row-normalised (each row sums to 1)")):
        axes.imshow(colours, cmap="Blues", vmin=0, vmax=1)
        for t in range(count):
            for p in range(count):
                axes.text(p, t, texts[t][p], ha="center", va="center", fontsize=8,
                          color="white" if colours[t, p] > 0.5 else "black")
        axes.set(xticks=range(count), yticks=range(count), xlabel="predicted class",
                 ylabel="true class", title=title)
        axes.set_xticklabels(class_names, rotation=45, ha="right")
        axes.set_yticklabels(class_names)
        cells = [text.get_text() for text in axes.texts]                  # read back, row by row
        drawn.append([cells[t * count:(t + 1) * count] for t in range(count)])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")     # room for the labels
    write_atomically(path, buffer.getvalue())
    return drawn[0], drawn[1]
