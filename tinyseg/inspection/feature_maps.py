"""Feature maps: what each stage of a trained network computes on one image.

A stage's output is a stack of maps, one per channel: the U-Net's first
block turns a (3, 64, 64) image into (16, 64, 64), sixteen 64 x 64 maps, each
the response of one learnt filter at every pixel. Drawn side by side they
show what the network pays attention to, stage by stage: edges and colours
first, then shapes, then (in the head) one score per class.

    maps = stage_outputs(net, x)        # {"encoder.0": (16, 64, 64), ..., "head": (4, 64, 64)}
    grid = channel_grid(maps["encoder.0"])     # one picture: every channel, min-max stretched

The outputs are recorded, not computed by hand: `stage_outputs` runs one
ordinary forward pass inside a Recording (recording.py), which collects
every module's output while it is on, and keeps those of the stages the
model names (`model.stages()`: each U-Net level, each FCN layer). No
model is edited, and what is drawn is exactly what the forward pass made.

Large images. A Recording keeps every tensor of the pass alive, so the
feature maps of a 3000 x 2000 photograph would need the whole-image pass's
gigabytes. `centre_crop` cuts a window of at most FEATURE_SIDE pixels a side
from the middle of the image, starting on the pooling grid, and the maps
are those of that window (near its edges they see the window's padding,
not the rest of the photograph).
"""

from __future__ import annotations

import math

import numpy as np

from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor

FEATURE_SIDE = 256       # largest side of the image the feature maps are recorded on


def stage_outputs(net, x: np.ndarray, device: str = "cpu") -> dict[str, np.ndarray]:
    """{stage: its output (C, h, w) as a NumPy array} for one normalised image x (C, H, W).

    net: a SegmentationModel in eval mode (Predictor.network()); its stages()
    say which module outputs to keep, in the order the forward pass makes them.
    """
    with no_grad(), Recording() as seen:
        net(Tensor(x[None], device=device))                        # (1, C, H, W) -> (1, K, H, W)
    outputs = seen.outputs_of(net)                                 # {module path: output Tensor}
    missing = [stage for stage in net.stages() if stage not in outputs]
    if missing:
        raise ValueError(f"stage_outputs: {type(net).__name__}.stages() names {', '.join(missing)}, "
                         f"which did not run in the forward pass")
    return {stage: backend.to_numpy(outputs[stage].data[0]) for stage in net.stages()}


def centre_crop(size: tuple, period: tuple, side: int = FEATURE_SIDE) -> tuple[slice, slice]:
    """(rows, cols) of the middle side x side window of an image of `size`, starting on the grid.

    The start is a multiple of the pooling period (as tiles start), so the
    window pools the way the whole image does. An image no larger than
    `side` along an axis keeps that axis whole.
    """
    spans = []
    for length, step in zip(size, period):
        if length <= side:
            spans.append(slice(0, length))
            continue
        start = (length - side) // 2 // step * step
        spans.append(slice(start, start + side))
    return spans[0], spans[1]


def channel_grid(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """Every channel of (C, h, w) maps in one (rows * (h + gap) - gap, cols * (w + gap) - gap) uint8 grid.

    cols = ceil(sqrt(C)) channels a row, in channel order. Each channel is
    stretched on its own (its smallest value black, its largest white), so a
    weak filter's pattern shows as clearly as a strong one's; a constant
    channel (a ReLU that never fires on this image: a "dead" filter) is black.
    The gaps between cells are mid-grey.
    """
    count, height, width = maps.shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    grid = np.full((rows * (height + gap) - gap, cols * (width + gap) - gap), 128, dtype=np.uint8)
    for channel, values in enumerate(maps):
        top = (channel // cols) * (height + gap)
        left = (channel % cols) * (width + gap)
        grid[top:top + height, left:left + width] = stretched(values)
    return grid


def stretched(values: np.ndarray) -> np.ndarray:
    """(h, w) values as uint8, the smallest 0 and the largest 255 (all 0 if constant)."""
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255 / (high - low))).astype(np.uint8)

