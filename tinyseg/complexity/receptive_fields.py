"""The receptive field: how many input pixels one output pixel can see, and how far, measured.

An output pixel of a convolutional network depends on a window of the input:
3 x 3 after one 3x3 convolution, 5 x 5 after two, and much more once pooling
makes every later layer's step bigger. `receptive_field` measures it on the
model object itself (perturb input pixels, watch the centre output), so it
stays true for any wiring: a chain of layers, a U-Net with its skips and
upsampling, the naive sliding window. `chain_receptive_field` gives the same
number by the textbook formula for a plain chain of layers, and the tests
hold the two equal.

`downsampling_period` (the product of all strides) says after how many
pixels a model repeats itself, and `field_reach` how far from an output
pixel the input pixels it depends on can be (about half the field: 51 rows
for the default U-Net, whose field is 100). Tiling needs both: its tiles
start on the period's grid and reach at least that far past their cores
(tiling.py); the report states the field (comparison.py).
"""

from __future__ import annotations

import copy

import numpy as np

from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.nn.conv import Conv2d, ConvTranspose2d
from tinyseg.nn.layers import BatchNorm2d, Linear, MaxPool2d
from tinyseg.tensor import Tensor

DELTA = 1e100          # the perturbation: far larger than any value the positive twin computes
LARGEST_REACH = 4096   # field_reach gives up beyond this many pixels


def positive_twin(model):
    """A float64 copy in which every output depends, increasingly, on every input it sees.

    Every weight becomes 1 and every bias 0; BatchNorm (in evaluation mode)
    becomes y = x / sqrt(1 + eps). On a positive input every value is then
    positive, so ReLU passes everything, and raising any input raises every
    value computed from it, so a max pool passes a large enough rise on too.
    Whether an output depends on an input no longer hinges on the weights.
    """
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        for name, tensor in vars(module).items():
            if not isinstance(tensor, Tensor):
                continue
            if isinstance(module, BatchNorm2d):
                value = 1.0 if name in ("weight", "running_var") else 0.0
            else:
                value = 1.0 if tensor.ndim >= 2 else 0.0     # weights 1, biases 0
            tensor.data = tensor.xp.full(tensor.shape, value, dtype=np.float64)
    return twin


def first_true(predicate, low: int, high: int) -> int:
    """Smallest t in [low, high] with predicate(t), for a predicate False up to some t, then
    True (binary search: log2(high - low) calls); high + 1 if it is never True."""
    high += 1
    while low < high:
        middle = (low + high) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle + 1
    return low


def first_moves(moved_by, count: int, size: int) -> np.ndarray:
    """For each of `count` watched pixels, the smallest t in [0, size) at which it moves.

    moved_by(t) -> (count,) booleans, and a pixel that has moved stays moved
    as t grows. A binary search finds the t at which the first pixel moves;
    the others follow within about one period, so t then steps up one by one.
    """
    t = first_true(lambda t: bool(moved_by(t).any()), 0, size - 1)
    first = np.full(count, -1)
    while (first < 0).any() and t < size:
        first[(first < 0) & moved_by(t)] = t
        t += 1
    return first


def field_extents(twin, size: int, axis: int, period: int):
    """(period,) fields, in input rows (axis 0) or columns (axis 1), of `period` neighbouring
    output pixels, from the output's centre down (or right), on a size x size input.

    None if a field reaches the border: the input is too small to hold it.
    """
    xp = next(twin.parameters()).xp
    image = xp.ones((1, twin.in_channels, size, size), dtype=np.float64)

    def watched(x):
        """The twin's outputs at the watched pixels: (classes, period)."""
        with no_grad():
            y = twin(Tensor(x)).data[0]                              # (classes, OH, OW)
        row, col = y.shape[1] // 2, y.shape[2] // 2
        if axis == 0:
            return y[:, row:row + period, col]
        return y[:, row, col:col + period]

    base = watched(image)
    if not (0 < float(base.min()) and float(base.max()) < 1e80):
        raise ValueError("receptive_field: the positive twin's outputs are not in (0, 1e80); "
                         "the model is too deep for this measurement")

    def moved(lines) -> np.ndarray:
        """Which watched pixels move when DELTA is added to these input rows (or columns)."""
        bumped = image.copy()
        bumped[(slice(None), slice(None)) + (slice(None),) * axis + (lines,)] += DELTA
        return backend.to_numpy((watched(bumped) != base).any(axis=0))

    if moved([0, size - 1]).any():                                   # a field reaches the border
        return None
    top = first_moves(lambda t: moved(slice(0, t + 1)), period, size)             # rows 0..t
    bottom = size - 1 - first_moves(lambda t: moved(slice(size - 1 - t, size)), period, size)
    return bottom - top + 1


def downsampling_period(model) -> tuple:
    """(rows, cols) after which the model repeats itself: the product of all layer strides.

    Shifting the input of a U-Net of depth 3 by 8 pixels shifts its output by
    8 pixels; shifting it by 1 moves the pixels across its pooling grid.
    """
    period = [1, 1]
    for module in model.modules():
        if isinstance(module, (Conv2d, MaxPool2d)):
            period = [period[0] * module.stride[0], period[1] * module.stride[1]]
    return tuple(period)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= value (a side rounded up to the period)."""
    return -(-value // multiple) * multiple


def receptive_field(model, start_size: int = 32, max_size: int = 4096) -> tuple:
    """(rows, cols): how many input rows and columns one output pixel depends on, measured.

    Input pixel p is in the receptive field of output pixel q when changing p
    changes q. On a positive twin of the model (see `positive_twin`), add a
    huge number to a band of input rows, rows 0 .. t, and see whether the
    output at q moves; the smallest t that moves it is the field's top edge.
    A binary search finds it in log2(size) forward passes, and likewise the
    bottom edge (bands t .. H-1), and the left and right edges with bands of
    columns. If the field reaches the border of the input, the input is too
    small: double it and measure again.

    A U-Net pools on a grid: pixels 0 and 1 of a 2x2 pooling window are not
    in the same place relative to it, and their fields can differ (depth 3:
    92 or 100 rows). We watch every position of one period of the grid
    (`downsampling_period`) at once and report the largest field, the usual
    meaning of "the receptive field of the network".

    Works for any model with an `in_channels` attribute: a chain of layers,
    a U-Net with its skips and upsampling, the naive model.
    """
    twin = positive_twin(model)
    period = downsampling_period(model)
    size = start_size
    while size <= max_size:
        rows = field_extents(twin, size, 0, period[0])
        cols = None if rows is None else field_extents(twin, size, 1, period[1])
        if cols is not None:
            return int(rows.max()), int(cols.max())
        size *= 2
    raise ValueError(f"receptive_field: larger than {max_size} pixels")


def field_reach(model) -> tuple[int, int]:
    """(rows, cols): how far from an output pixel the input pixels it depends on can be.

    On the positive twin, a batch of images of ones, image i with one row
    r_i raised by DELTA, one image per position r_i of a period of the
    pooling grid (1 row for an FCN, 8 for a U-Net of depth 3). The output
    rows q that jump are those that depend on row r_i; the reach is the
    largest |q - r_i|. The images are a period wide and `size` rows tall,
    doubled until the rows that jump stay in the middle half, far from the
    borders. Columns likewise, on images turned the other way.
    """
    twin = positive_twin(model)
    device = backend.device_of(next(twin.parameters()).data)
    period = downsampling_period(model)
    reach = []
    for axis in (0, 1):
        size = round_up(256, period[axis])                         # 4x the default U-Net's reach
        while size <= LARGEST_REACH * 4:
            found = reach_along(twin, axis, size, period, device)
            if found is not None:
                reach.append(found)
                break
            size *= 2
        else:
            raise ValueError(f"field_reach: {type(model).__name__} sees more than "
                             f"{LARGEST_REACH} pixels away")
    return reach[0], reach[1]


def reach_along(twin, axis: int, size: int, period: tuple, device: str):
    """The reach along `axis` measured on images `size` long, or None if too short to tell."""
    count = period[axis]
    shape = (size, period[1]) if axis == 0 else (period[0], size)
    images = np.ones((count, twin.in_channels) + shape)                  # (count, C, h, w)
    bumped = size // 2 + np.arange(count)                                # r_i: one period
    for i, row in enumerate(bumped):
        if axis == 0:
            images[i, :, row, :] += DELTA
        else:
            images[i, :, :, row] += DELTA
    with no_grad():
        out = backend.to_numpy(twin(Tensor(images, device=device)).data)   # (count, K, h, w)
    other = 3 if axis == 0 else 2
    moved = out.max(axis=(1, other)) > DELTA / 1e10                      # (count, size)
    lines = np.arange(size)
    reach = 0
    for i, row in enumerate(bumped):
        hit = lines[moved[i]]
        if hit.min() < size // 4 or hit.max() >= size - size // 4:
            return None                                                  # near a border
        reach = max(reach, int(np.abs(hit - row).max()))
    return reach


def chain_receptive_field(model) -> tuple:
    """(rows, cols) by the chain rule of receptive fields, for a plain chain of layers.

    Walking a chain from the input, each k x k layer widens the field by
    (k - 1) steps of the current jump (the input pixels between two
    neighbouring positions of this layer), and a stride s multiplies the jump:

        r = 1 + sum over layers of (k - 1) * jump,     jump = product of earlier strides

    Four 3x3 convolutions and a 1x1 head: r = 1 + 4 * 2 = 9. Valid for models
    whose layers, in the order they were made, are the order data flows
    through them (FCN, SlidingWindow.to_fcn()); a model that upsamples or
    ends in a Linear layer raises ValueError: use `receptive_field`.
    """
    field, jump = [1, 1], [1, 1]
    for module in model.modules():
        if isinstance(module, (ConvTranspose2d, Linear)):
            raise ValueError(f"chain_receptive_field: {type(model).__name__} has a "
                             f"{type(module).__name__}, so it is not a chain of convolutions; "
                             "use receptive_field(model)")
        if isinstance(module, (Conv2d, MaxPool2d)):
            for axis in (0, 1):
                field[axis] += (module.kernel_size[axis] - 1) * jump[axis]
                jump[axis] *= module.stride[axis]
    return tuple(field)
