"""Hypothesis strategies shared by every test: small shapes, operator configs, arrays.

Sizes stay small (N <= 3, C, O <= 4, H, W <= 9) so that a few dozen examples
per test run in well under a second, yet every awkward case is in reach:
batch 1, one channel, odd sizes, stride larger than the kernel, non-square
kernels, padding, output_padding.

Array *values* come from a drawn seed fed to NumPy's generator rather than
from hypothesis element by element: a weight filled with one repeated value
(hypothesis' favourite array) would hide a flipped or transposed kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_BATCH, MAX_CHANNELS, MAX_SIDE = 3, 4, 9
MAX_KERNEL, MAX_STRIDE, MAX_PADDING = 4, 4, 2

seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------- shapes
def shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    """Array shapes for the elementwise and shape operations."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def broadcastable_shapes(max_dims: int = 3, max_side: int = 4):
    """Two shapes that broadcast together, e.g. ((3, 1), (2, 3, 4))."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side
    ).map(lambda result: result.input_shapes)


def pairs(sides):
    """An (h, w) pair drawn independently: non-square kernels, strides, paddings."""
    return st.tuples(sides, sides)


# ----------------------------------------------------------------- arrays
def normal_arrays(shape, scale: float = 1.0):
    """float64 samples of N(0, scale^2) of the given shape."""
    return seeds.map(lambda seed: np.asarray(scale * np.random.default_rng(seed).standard_normal(shape)))


def away_from_zero(shape, low: float = 0.5, high: float = 2.0):
    """float64 values with |v| in [low, high] and random signs (divisors, relu inputs)."""
    def make(seed):
        rng = np.random.default_rng(seed)
        return np.asarray(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape))
    return seeds.map(make)


def positive_arrays(shape, low: float = 0.5, high: float = 3.0):
    """float64 values in [low, high] (inputs of log and of fractional powers)."""
    return seeds.map(lambda seed: np.asarray(np.random.default_rng(seed).uniform(low, high, size=shape)))


def tie_free(shape, seed: int, spacing: float = 0.1) -> np.ndarray:
    """Distinct values `spacing` apart (a shuffled arange), for max-pool gradient checks.

    A finite-difference step (1e-6) can never change which element is a window's max.
    """
    size = int(np.prod(shape))
    return spacing * (np.random.default_rng(seed).permutation(size).reshape(shape) - size / 2)


def tied(shape, seed: int, distinct_values: int = 3) -> np.ndarray:
    """Small integers (as float64), so that most windows hold their maximum twice or more."""
    return np.random.default_rng(seed).integers(0, distinct_values, size=shape).astype(np.float64)


def tie_free_arrays(shape):
    return seeds.map(lambda seed: tie_free(shape, seed))


def tied_arrays(shape):
    return seeds.map(lambda seed: tied(shape, seed))


def bounded_arrays(shape, low: float = -2.0, high: float = 2.0):
    """Arrays whose elements hypothesis draws one by one, in [low, high] (MiniTorch style)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(
        low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False))


# ----------------------------------------------------------------- arguments of Tensor operations
@st.composite
def matmul_shapes(draw):
    """(..., n, k) and (..., k, m) with batch axes that broadcast, e.g. (2, 1, 3, 4) and (5, 4, 2)."""
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=2, max_side=3))
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return batch_a + (n, k), batch_b + (k, m)


@st.composite
def arrays_and_axes(draw):
    """An array and a reduction axis argument: None, one axis (maybe negative) or a tuple of axes."""
    shape = draw(shapes(min_dims=0, max_dims=4))
    ndim = len(shape)
    axes = st.none()
    if ndim:
        axes = axes | st.integers(-ndim, ndim - 1) | hnp.valid_tuple_axes(ndim, min_size=1)
    return draw(normal_arrays(shape)), draw(axes)


@st.composite
def arrays_and_dim(draw, scale: float = 3.0):
    """An array of 1 to 4 axes and one axis of it, maybe negative (softmax's `dim`)."""
    shape = draw(shapes(min_dims=1, max_dims=4))
    return draw(normal_arrays(shape, scale)), draw(st.integers(-len(shape), len(shape) - 1))


@st.composite
def arrays_and_new_shapes(draw):
    """An array and a shape of the same size: its sides shuffled, maybe a 1 added, maybe a side as -1."""
    shape = draw(shapes(min_dims=1, max_dims=4))
    new_shape = list(draw(st.permutations(shape)))
    if draw(st.booleans()):
        new_shape.insert(draw(st.integers(0, len(new_shape))), 1)
    if draw(st.booleans()):
        new_shape[draw(st.integers(0, len(new_shape) - 1))] = -1
    return draw(normal_arrays(shape)), tuple(new_shape)


@st.composite
def arrays_to_cat(draw):
    """1 to 3 arrays, equal in shape except along `axis` (which may be negative), and the axis."""
    base = list(draw(shapes(min_dims=1, max_dims=3)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        base[axis] = draw(st.integers(1, 3))
        arrays.append(draw(normal_arrays(tuple(base))))
    return arrays, axis


@st.composite
def arrays_and_pads(draw):
    """An array and a torch-style pad tuple: (before, after) pairs for its last axes, last axis first."""
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=3))
    padded_axes = draw(st.integers(1, len(shape)))
    return draw(normal_arrays(shape)), tuple(draw(st.integers(0, 2)) for _ in range(2 * padded_axes))


# ----------------------------------------------------------------- convolution
@dataclass(frozen=True)
class ConvConfig:
    """conv2d of an (N, C, H, W) input with an (O, C, kh, kw) weight."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple
    stride: tuple
    padding: tuple

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple:
        return (self.out_channels, self.in_channels) + self.kernel

    @property
    def output_shape(self) -> tuple:
        oh = (self.height + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        ow = (self.width + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return (self.batch, self.out_channels, oh, ow)

    @property
    def output_padding(self) -> tuple:
        """The output_padding with which conv_transpose2d maps the output back to (H, W)."""
        return ((self.height + 2 * self.padding[0] - self.kernel[0]) % self.stride[0],
                (self.width + 2 * self.padding[1] - self.kernel[1]) % self.stride[1])


@st.composite
def conv_configs(draw, max_batch: int = MAX_BATCH, max_channels: int = MAX_CHANNELS,
                 max_side: int = MAX_SIDE) -> ConvConfig:
    """A conv2d config whose kernel fits the padded input (H + 2 ph >= kh)."""
    kernel = draw(pairs(st.integers(1, MAX_KERNEL)))
    stride = draw(pairs(st.integers(1, MAX_STRIDE)))
    padding = draw(pairs(st.integers(0, MAX_PADDING)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max(max_side, kernel[0])))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max(max_side, kernel[1])))
    return ConvConfig(
        batch=draw(st.integers(1, max_batch)),
        in_channels=draw(st.integers(1, max_channels)),
        out_channels=draw(st.integers(1, max_channels)),
        height=height, width=width, kernel=kernel, stride=stride, padding=padding,
    )


@dataclass(frozen=True)
class TransposeConvConfig:
    """conv_transpose2d of an (N, C_in, H, W) input with a (C_in, C_out, kh, kw) weight."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple:
        return (self.in_channels, self.out_channels) + self.kernel

    @property
    def output_shape(self) -> tuple:
        """OH = (H - 1) * stride - 2 * padding + kh + output_padding."""
        sizes = [(size - 1) * s - 2 * p + k + op for size, s, p, k, op in zip(
            (self.height, self.width), self.stride, self.padding, self.kernel, self.output_padding)]
        return (self.batch, self.out_channels, sizes[0], sizes[1])


@st.composite
def transpose_conv_configs(draw, max_batch: int = MAX_BATCH, max_channels: int = MAX_CHANNELS,
                           max_side: int = 6) -> TransposeConvConfig:
    """A conv_transpose2d config with output_padding < stride and a positive output size."""
    kernel = draw(pairs(st.integers(1, MAX_KERNEL)))
    stride = draw(pairs(st.integers(1, 3)))
    height, width = draw(pairs(st.integers(1, max_side)))
    output_padding = (draw(st.integers(0, stride[0] - 1)), draw(st.integers(0, stride[1] - 1)))
    padding = []
    for size, s, k, op in zip((height, width), stride, kernel, output_padding):
        largest = ((size - 1) * s + k + op - 1) // 2          # keeps the output size >= 1
        padding.append(draw(st.integers(0, min(MAX_PADDING, largest))))
    return TransposeConvConfig(
        batch=draw(st.integers(1, max_batch)),
        in_channels=draw(st.integers(1, max_channels)),
        out_channels=draw(st.integers(1, max_channels)),
        height=height, width=width, kernel=kernel, stride=stride,
        padding=tuple(padding), output_padding=output_padding,
    )


# ----------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PoolConfig:
    """max_pool2d of an (N, C, H, W) input; stride None means stride = kernel."""

    batch: int
    channels: int
    height: int
    width: int
    kernel: tuple
    stride: tuple | None
    padding: tuple

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.channels, self.height, self.width)


@st.composite
def pool_configs(draw, max_side: int = MAX_SIDE) -> PoolConfig:
    """A max_pool2d config with padding <= kernel // 2 and the kernel inside the padded input."""
    kernel = draw(pairs(st.integers(1, MAX_KERNEL)))
    stride = draw(st.none() | pairs(st.integers(1, MAX_STRIDE)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max(max_side, kernel[0])))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max(max_side, kernel[1])))
    return PoolConfig(batch=draw(st.integers(1, MAX_BATCH)), channels=draw(st.integers(1, MAX_CHANNELS)),
                      height=height, width=width, kernel=kernel, stride=stride, padding=padding)


# ----------------------------------------------------------------- cross-entropy
@dataclass(frozen=True)
class CrossEntropyCase:
    """Logits (N, C) or (N, C, H, W), integer targets (N,) or (N, H, W), and the options."""

    logits: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None
    ignore_index: int
    reduction: str


@st.composite
def cross_entropy_cases(draw, spatial: bool | None = None, some_valid: bool = True,
                        reductions=("mean", "sum", "none"), weighted: bool | None = None) -> CrossEntropyCase:
    """A classification (N, C) or segmentation (N, C, H, W) cross-entropy problem.

    About a quarter of the targets are `ignore_index` (which may itself be a
    real class index, as with PyTorch). With `some_valid`, at least one target is
    a real class, so that the weighted mean is not 0/0.
    """
    batch, classes = draw(st.integers(1, MAX_BATCH)), draw(st.integers(1, MAX_CHANNELS))
    spatial = draw(st.booleans()) if spatial is None else spatial
    extra = draw(pairs(st.integers(1, 5))) if spatial else ()
    ignore_choices = [-100, 255] + ([classes - 1] if classes > 1 else [])
    ignore_index = draw(st.sampled_from(ignore_choices))
    rng = np.random.default_rng(draw(seeds))
    scale = draw(st.sampled_from([1.0, 3.0]))
    logits = scale * rng.standard_normal((batch, classes) + extra)
    target = rng.integers(0, classes, size=(batch,) + extra)
    target[rng.random(target.shape) < 0.25] = ignore_index
    if some_valid:
        target.flat[0] = next(c for c in range(classes) if c != ignore_index)
    weighted = draw(st.booleans()) if weighted is None else weighted
    weight = rng.uniform(0.2, 2.0, size=classes) if weighted else None
    return CrossEntropyCase(logits=logits, target=target, weight=weight,
                            ignore_index=ignore_index, reduction=draw(st.sampled_from(reductions)))
