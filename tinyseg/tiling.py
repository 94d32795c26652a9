"""Labels for an image of any size in bounded memory: run the model on tiles, exactly.

A photograph of a few megapixels through the default U-Net in one pass
needs gigabytes for its activations. Cutting the image into tiles bounds
that, but a tile is not a small image: near its border the convolutions
see the zeros of their padding where the whole image has real pixels. Two
facts make tiling exact anyway.

1. Each output pixel q depends only on the input pixels within `reach`
   rows and columns of it (the reach is about half the receptive field:
   51 rows for the default U-Net of depth 3, whose field is 100 rows; 4 for
   an FCN of depth 4, whose field is 9).
   A tile that contains q and every pixel within the reach of q, or stops
   only where the image itself stops, computes q from the same pixels as
   the whole-image pass. So each tile is a core (the pixels it writes) plus
   a margin of at least the reach on each side that is not the image's
   border; only the core's labels are kept:

         margin   core   margin
        |-------|=======|-------|       tile k
                        |-------|=======|-------|     tile k + 1
                                (cores meet, margins overlap)

2. A U-Net pools on a grid: a 2x2 pooling window starts at an even row,
   and after `depth` poolings the grid has a period of 2**depth pixels
   (`downsampling_period`). A tile that starts at row 13 would pool rows
   13-14 where the whole image pools 12-13. So every tile starts at a
   multiple of the period, and every core and margin is a multiple of it.

The whole-image pass pads the image at the bottom and right with zeros up
to a multiple of 2**depth (models/unet.py). Tiling does the same padding
first, cuts the padded image (every tile is then a multiple of the period,
so the model pads nothing more), and crops the labels at the end. A tile
at the image's edge ends where the padded image ends, and there the
model's own zero padding is exactly the whole pass's.

Why the tile then gives the whole pass's numbers: a value the network
computes on the way to q (a feature at level l, position p) depends on the
input pixels of its own block, so were it outside the tile, q would depend
on pixels beyond its reach. Every value q needs is thus computed inside the
tile, from the same aligned inputs with the same weights, as in the whole
pass; the zeros a tile pads with reach only values that q does not need.
Only the summation order inside a matrix product may differ between a
tile and the whole image, so logits agree to float rounding (~1e-6) and
labels agree except at near-ties. tests/test_predict.py checks this for
all three models.

The reach and the period are measured on the model object, beside the
receptive field, in complexity/receptive_fields.py (`field_reach`: on the
model's positive twin, raise one input row and see which output rows move;
`downsampling_period`), once per model and only for images larger than a
tile. This file only cuts, runs and pastes tiles.

Memory: one tile's activations, the image, its padded copy and the (H, W)
label map; the logits of the whole image are never held. For the default
U-Net a 512-pixel core with 56-pixel margins makes tiles of at most
624 x 624 (the peak against one pass: benchmarks/results/tiling.md).
"""

from __future__ import annotations

import numpy as np

from tinyseg.complexity.receptive_fields import downsampling_period, field_reach, round_up

TILE_SIZE = 512          # core side in pixels (the memory it bounds: benchmarks/results/tiling.md)


def tile_margin(model) -> tuple[int, int]:
    """(rows, cols) of margin around each tile's core: the reach, rounded up to the period."""
    period = downsampling_period(model)
    reach = field_reach(model)
    return round_up(reach[0], period[0]), round_up(reach[1], period[1])


def tile_spans(size: int, core: int, margin: int, period: int) -> list[tuple[int, int, int, int]]:
    """(tile start, tile stop, core start, core stop) along one axis of `size` pixels.

    size is a multiple of period. The cores cut [0, size) into equal parts
    of at most `core` pixels (rounded up to the period, the last one takes
    what is left); each tile is its core widened by `margin` on both sides,
    clipped to the image. An axis no longer than core + 2 * margin is one
    tile: the whole axis.
    """
    if size <= core + 2 * margin:
        return [(0, size, 0, size)]
    count = -(-size // core)
    step = round_up(-(-size // count), period)
    spans = []
    for start in range(0, size, step):
        stop = min(start + step, size)
        spans.append((max(0, start - margin), min(size, stop + margin), start, stop))
    return spans


def tile_boxes(size: tuple, period: tuple, margin: tuple, tile_size: int = TILE_SIZE):
    """Yield ((rows, cols) of a tile, (rows, cols) of its core) over an image of `size` = (H, W).

    H and W are multiples of the period (pad_to_period). The cores cover the
    image once; each tile is its core widened by the margin (tile_spans).
    """
    rows = tile_spans(size[0], round_up(tile_size, period[0]), margin[0], period[0])
    cols = tile_spans(size[1], round_up(tile_size, period[1]), margin[1], period[1])
    for top, bottom, core_top, core_bottom in rows:
        for left, right, core_left, core_right in cols:
            yield ((slice(top, bottom), slice(left, right)),
                   (slice(core_top, core_bottom), slice(core_left, core_right)))


def pad_to_period(x: np.ndarray, period: tuple) -> np.ndarray:
    """(C, H, W) padded with zeros at the bottom and right to multiples of the period (as the U-Net pads)."""
    channels, height, width = x.shape
    padded_h, padded_w = round_up(height, period[0]), round_up(width, period[1])
    if (padded_h, padded_w) == (height, width):
        return x
    padded = np.zeros((channels, padded_h, padded_w), dtype=x.dtype)
    padded[:, :height, :width] = x
    return padded


def tiled(forward, image: np.ndarray, period: tuple, margin: tuple,
          tile_size: int = TILE_SIZE) -> np.ndarray:
    """forward over an image, tile by tile: (C, H, W) -> (K, H, W), exactly as on the whole.

    forward: (1, C, h, w) float array -> (K, h, w) array (logits, or labels
    with K = 1), for the tiles' sizes h and w, multiples of `period`.
    margin: (rows, cols), at least the model's reach (`tile_margin`).
    Only the output map (K, H, W) and one tile at a time are held.
    (Predictor.logits_by_tile walks the same tiles, one core at a time.)
    """
    height, width = image.shape[1:]
    padded = pad_to_period(image, period)
    out = None
    for (rows, cols), (core_rows, core_cols) in tile_boxes(padded.shape[1:], period, margin, tile_size):
        result = forward(np.ascontiguousarray(padded[None, :, rows, cols]))      # (K, h, w)
        if out is None:
            out = np.empty((result.shape[0],) + padded.shape[1:], dtype=result.dtype)
        out[:, core_rows, core_cols] = result[:, core_rows.start - rows.start:core_rows.stop - rows.start,
                                              core_cols.start - cols.start:core_cols.stop - cols.start]
    return out[:, :height, :width]                                        # crop the padding


def needs_tiles(image_shape: tuple, tile_size: int = TILE_SIZE) -> bool:
    """Whether an image of (..., H, W) is larger than one tile's core along some axis."""
    return max(image_shape[-2:]) > tile_size
