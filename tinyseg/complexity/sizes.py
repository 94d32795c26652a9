"""Counting at any image size: trace a few small images, then follow the line every shape is on.

Running a 100,000 x 100,000 image through a U-Net to count its
multiply-accumulates would need terabytes of memory; a 3000 x 4000 one
takes minutes and 5 GB. Neither is needed, because in these models every
intermediate shape follows a straight line in the image size. A 3x3
convolution with padding 1 keeps a side h, one without padding makes it
h - 2, a 2x2 pooling halves it, and the U-Net first pads h up to a multiple
of 2**depth. So within one remainder of the downsampling period P, for
h = r + P * k, each side of each intermediate result is exactly a + b * k:

    U-Net, depth 3 (P = 8), h = 5 + 8k:  padded 8k + 8, level 1 4k + 4, bottleneck k + 1
    naive.to_fcn(), window 15 (P = 1):   padded h + 14, after the first 3x3 layer h + 12

`forward_cost_at` traces the model on three small images of the asked
size's remainder, (h0, w0), (h0 + P, w0) and (h0, w0 + P), reads the shape
of every operation's result and of every array the graph keeps, fits the
line through them and evaluates it at the asked size. A fourth trace,
(h0 + P, w0 + P), checks the lines: a shape off its line is an error naming
the operation, never a silent wrong count. The MACs and bytes then follow
from the shapes alone (counting.macs_of), so any size answers in the time
of four forward passes on images a few periods wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinyseg import autograd
from tinyseg.autograd import Node
from tinyseg.complexity.counting import ResultArrays, blank_input, forward_cost, macs_of, storage
from tinyseg.complexity.receptive_fields import downsampling_period

SMALL_PERIODS = 2          # the first trace is at most this many periods past the remainder


@dataclass
class ShapeTrace:
    """The shapes one forward pass made: every operation's, and every array the graph keeps."""
    operations: list       # (op, result shape, [input shapes]) in the order backward walks back
    arrays: list           # (shape, itemsize) of each kept array, counted once (views share one)


def trace_shapes(model, size: tuple) -> ShapeTrace:
    """The ShapeTrace of model(x) for one blank (1, C, H, W) image, size = (H, W), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with ResultArrays() as results:
            output = model(blank_input(model, (1, model.in_channels) + tuple(size)))
        operations, arrays, owners = [], [], set()
        for node in autograd.topological_order(output):
            if not isinstance(node, Node):
                continue                                           # a leaf: a parameter or the input
            operations.append((node.op, tuple(node.shape), [tuple(p.shape) for p in node.parents]))
            array = results.array(node)
            if array is not None and id(storage(array)) not in owners:
                owners.add(id(storage(array)))
                arrays.append((tuple(storage(array).shape), storage(array).itemsize))
        return ShapeTrace(operations, arrays)
    finally:
        model.train(was_training)


def on_the_line(base, taller, wider, both, k_rows: int, k_cols: int, what: str) -> tuple:
    """A shape extended to (k_rows, k_cols) periods from the base along the line through the traces.

    Each entry: base + (taller - base) * k_rows + (wider - base) * k_cols, after
    checking that `both` (one period more each way) lies on that line.
    """
    if not len(base) == len(taller) == len(wider) == len(both):
        raise ValueError(f"complexity: {what} changes its number of axes with the image size")
    shape = []
    for a, b, c, d in zip(base, taller, wider, both):
        if d != b + c - a:
            raise ValueError(f"complexity: the shape of {what} does not grow in a straight line with "
                             f"the image size ({base}, {taller}, {wider}, {both}), so it cannot be "
                             f"counted from small images")
        shape.append(a + (b - a) * k_rows + (c - a) * k_cols)
    return tuple(shape)


def start_size(side: int, period: int) -> int:
    """The first traced side: the asked side's remainder plus at most SMALL_PERIODS periods (<= side)."""
    remainder = side % period
    periods = min(SMALL_PERIODS, (side - remainder) // period)
    return remainder + periods * period


def forward_cost_at(model, size: tuple) -> tuple:
    """(MACs, activation bytes) of model(x) for one (1, C, H, W) image of any size, from shapes.

    The same numbers counting.forward_cost measures by running the image,
    obtained from four small traces (see the module docstring).
    """
    height, width = (int(side) for side in size)
    if height < 1 or width < 1:
        raise ValueError(f"--size must be positive, got {height} {width}")
    period = downsampling_period(model)
    h0, w0 = start_size(height, period[0]), start_size(width, period[1])
    if (height, width) == (h0, w0):
        return forward_cost(model, (height, width))              # small already: run it
    traces = [trace_shapes(model, (h0 + dh, w0 + dw))
              for dh, dw in ((0, 0), (period[0], 0), (0, period[1]), (period[0], period[1]))]
    counts = [(len(t.operations), len(t.arrays)) for t in traces]
    if len(set(counts)) != 1:
        raise ValueError("complexity: the model's graph changes with the image size, so it cannot "
                         "be counted from small images")
    k_rows, k_cols = (height - h0) // period[0], (width - w0) // period[1]
    macs = 0
    for entries in zip(*(t.operations for t in traces)):
        op = entries[0][0]
        shape = on_the_line(*(entry[1] for entry in entries), k_rows, k_cols, f"the {op} result")
        inputs = [on_the_line(*shapes, k_rows, k_cols, f"an input of {op}")
                  for shapes in zip(*(entry[2] for entry in entries))]
        macs += macs_of(op, shape, inputs)
    kept = 0
    for entries in zip(*(t.arrays for t in traces)):
        shape = on_the_line(*(entry[0] for entry in entries), k_rows, k_cols, "a kept array")
        kept += math.prod(shape) * entries[0][1]
    return macs, kept
