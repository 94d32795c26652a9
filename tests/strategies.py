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

import atexit
import itertools
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

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


# ----------------------------------------------------------------- image files (the user path)
# Picture files of every bit depth and channel layout PNG, JPEG and TIFF allow, each written by a
# reference writer (tifffile; Pillow for JPEG; a hand-written PNG writer below for every PNG kind)
# and its pixel values read back by a reference reader (tifffile; Pillow where it is exact; pypng
# for 16-bit colour PNG), scaled as the table in tinyseg/data/images.py says. A file no installed
# reader gives exactly is expected to be REFUSED. Pillow, tifffile and pypng are imported only here.
REFUSED = "refused"
PNG_KINDS = {"grey": (0, (1, 2, 4, 8, 16)), "colour": (2, (8, 16)), "palette": (3, (1, 2, 4, 8)),
             "grey+alpha": (4, (8, 16)), "RGBA": (6, (8, 16))}       # layout: (colour type, bit depths)
PNG_SAMPLES = {"grey": 1, "colour": 3, "palette": 1, "grey+alpha": 2, "RGBA": 4}
TIFF_DTYPES = ("bool", "uint8", "uint16", "int8", "int16", "int32", "uint32",
               "float16", "float32", "float64")
# layout: (Photometric, samples a pixel, extra samples); the last two are refused (not 1 or 3 channels)
TIFF_LAYOUTS = {"grey": ("minisblack", 1, ()), "grey+alpha": ("minisblack", 2, ("unassalpha",)),
                "colour": ("rgb", 3, ()), "RGBA": ("rgb", 4, ("unassalpha",)),
                "min-is-white": ("miniswhite", 1, ()), "palette": ("palette", 1, ()),
                "3 grey": ("minisblack", 3, ("unspecified",) * 2),
                "5 colour": ("rgb", 5, ("unspecified",) * 2)}
SPECIALS = ("", "nan", "huge", "two pages")      # NaN, beyond float32 / 2**24, a multi-page TIFF


@dataclass(frozen=True)
class ImageFileSpec:
    """What one drawn picture file is: format, layout, sample type, size, values (seed), EXIF turn."""

    format: str              # "PNG", "JPEG" or "TIFF"
    layout: str              # a key of PNG_KINDS or TIFF_LAYOUTS, or "grey"/"colour"/"CMYK" for JPEG
    dtype: str               # numpy dtype of the samples ("uint8" ... "float64"; "bool" for 1-bit TIFF)
    bits: int                # bits a sample (PNG 1..16)
    height: int
    width: int
    seed: int
    orientation: int = 1     # the EXIF/TIFF Orientation tag, 1..8
    planar: bool = False     # TIFF: samples stored plane by plane (S, H, W)
    special: str = ""        # one of SPECIALS

    @property
    def suffix(self) -> str:
        return {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}[self.format]


@st.composite
def image_file_specs(draw, max_side: int = 16, formats=("PNG", "JPEG", "TIFF")) -> ImageFileSpec:
    """An ImageFileSpec: any layout and depth of PNG, JPEG or TIFF, 1x1 to max_side x max_side."""
    form = draw(st.sampled_from(formats))
    height, width = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    seed, orientation = draw(seeds), draw(st.integers(1, 8))
    if form == "PNG":
        layout = draw(st.sampled_from(sorted(PNG_KINDS)))
        bits = draw(st.sampled_from(PNG_KINDS[layout][1]))
        return ImageFileSpec("PNG", layout, "uint16" if bits == 16 else "uint8", bits, height, width,
                             seed, orientation)
    if form == "JPEG":
        layout = draw(st.sampled_from(["grey", "colour", "CMYK"]))
        return ImageFileSpec("JPEG", layout, "uint8", 8, height, width, seed, orientation)
    layout = draw(st.sampled_from(sorted(TIFF_LAYOUTS)))
    dtypes = {"palette": ("uint8", "uint16"), "min-is-white": ("bool", "uint8", "uint16")}
    if TIFF_LAYOUTS[layout][1] > 1:          # 1-bit samples come alone (tifffile cannot read back
        dtypes[layout] = TIFF_DTYPES[1:]     # its own planar 1-bit RGB whose width is not a multiple of 8)
    dtype = draw(st.sampled_from(dtypes.get(layout, TIFF_DTYPES)))
    special = draw(st.sampled_from(SPECIALS))
    if (special == "nan" and "float" not in dtype) or (special == "huge" and dtype not in
                                                       ("int32", "uint32", "float64")):
        special = ""
    planar = TIFF_LAYOUTS[layout][1] > 1 and draw(st.booleans())
    return ImageFileSpec("TIFF", layout, dtype, 1 if dtype == "bool" else np.dtype(dtype).itemsize * 8,
                         height, width, seed, orientation, planar, special)


@st.composite
def image_files(draw, folder=None, max_side: int = 16, formats=("PNG", "JPEG", "TIFF")):
    """(path, expected): a picture file written into `folder` (default: one temporary folder) and
    what read_image must give, float32 (C, H, W), or REFUSED."""
    spec = draw(image_file_specs(max_side, formats))
    folder = Path(folder) if folder is not None else image_folder()
    path = folder / f"{next(FILE_NUMBERS):05d}{spec.suffix}"
    return path, write_image_file(spec, path)


def image_folder() -> Path:
    """The temporary folder image_files writes into when given none (one per test process)."""
    if not IMAGE_FOLDER:
        IMAGE_FOLDER.append(Path(tempfile.mkdtemp(prefix="tinyseg-image-files-")))
        atexit.register(shutil.rmtree, IMAGE_FOLDER[0], ignore_errors=True)
    return IMAGE_FOLDER[0]


IMAGE_FOLDER: list = []
FILE_NUMBERS = itertools.count()


def file_stems():
    """File names without suffix that have tripped readers: spaces, non-ASCII, invalid UTF-8 bytes."""
    awkward = st.sampled_from(["a b", "été", "日本", "x.y", "-dash", os.fsdecode(b"bad\xff")])
    return st.tuples(awkward, st.integers(0, 999)).map(lambda pair: f"{pair[0]}{pair[1]}")


def write_image_file(spec: ImageFileSpec, path) -> np.ndarray | str:
    """Write the file `spec` describes at `path`; return what read_image must give, or REFUSED."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    if spec.format == "PNG":
        return write_png_case(spec, path, rng)
    if spec.format == "JPEG":
        return write_jpeg_case(spec, path, rng)
    return write_tiff_case(spec, path, rng)


def sample_values(rng, dtype: str, shape, levels: int | None = None) -> np.ndarray:
    """Random samples of a dtype: the whole range, or (half the time for 16 bits) a dim 800..1000."""
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    low, high = max(info.min, -2 ** 24), min(info.max, 2 ** 24) if levels is None else levels
    if dtype == "uint16" and rng.random() < 0.5:
        low, high = 800, 1000                     # a dim microscope image: Pillow's 8 bits are all 3
    return rng.integers(low, high + 1, shape).astype(dtype)


def viewer_turn(array: np.ndarray, orientation: int) -> np.ndarray:
    """`array` (H, W, ...) turned as Pillow's ImageOps.exif_transpose turns a picture with this tag.

    Pillow turns a picture of pixel numbers (mode "I"); the numbers then move the samples alike.
    """
    from PIL import Image
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)              # as in ImageOps.exif_transpose
    if method is None:
        return array
    height, width = array.shape[:2]
    numbers = Image.fromarray(np.arange(height * width, dtype=np.int32).reshape(height, width))
    moved = np.asarray(numbers.transpose(method))
    return array.reshape(height * width, *array.shape[2:])[moved]


def as_expected(values: np.ndarray, levels: int | None, orientation: int = 1) -> np.ndarray:
    """float32 (C, H, W) of reference samples (H, W, C): value / levels in float64, then turned."""
    values = values.astype(np.float64) / levels if levels else values.astype(np.float64)
    return np.ascontiguousarray(viewer_turn(values, orientation).astype(np.float32).transpose(2, 0, 1))


# ---- PNG: written by hand, so that every colour type and bit depth is reachable
def png_bytes(samples: np.ndarray, bits: int, colour_type: int, palette=None, orientation: int = 1) -> bytes:
    """A PNG file: signature, IHDR, PLTE (palette), eXIf (orientation), one IDAT of unfiltered rows, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = samples.shape
    if bits < 8:                                           # several samples a byte, leftmost highest
        per_byte = 8 // bits
        padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
        padded[:, :width] = samples[..., 0]
        groups = padded.reshape(height, -1, per_byte)
        rows = sum(groups[..., i] << (8 - bits * (i + 1)) for i in range(per_byte)).astype(np.uint8)
    else:
        rows = samples.astype(">u2" if bits == 16 else np.uint8).reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits,
                                                                colour_type, 0, 0, 0))]
    if palette is not None:
        parts.append(chunk(b"PLTE", palette.astype(np.uint8).tobytes()))
    if orientation != 1:                   # EXIF: a big-endian TIFF header and one IFD entry, tag 274
        exif = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 274, 3, 1, orientation, 0)
        parts.append(chunk(b"eXIf", exif + struct.pack(">I", 0)))
    return b"".join(parts + [chunk(b"IDAT", zlib.compress(raw)), chunk(b"IEND", b"")])


def write_png_case(spec: ImageFileSpec, path: Path, rng) -> np.ndarray | str:
    colour_type = PNG_KINDS[spec.layout][0]
    levels = 2 ** spec.bits - 1
    samples = sample_values(rng, spec.dtype, (spec.height, spec.width, PNG_SAMPLES[spec.layout]), levels)
    palette = rng.integers(0, 256, (levels + 1, 3)) if spec.layout == "palette" else None
    path.write_bytes(png_bytes(samples, spec.bits, colour_type, palette, spec.orientation))
    if spec.bits == 16 and colour_type != 0:              # Pillow would give 8 bits: pypng reads it
        try:
            import png
        except ImportError:
            return REFUSED
        width, height, rows, info = png.Reader(filename=str(path)).read()
        stored = np.array([np.asarray(row) for row in rows]).reshape(height, width, -1)
        return as_expected(stored[..., :3 if colour_type in (2, 6) else 1], 65535, spec.orientation)
    from PIL import Image
    with Image.open(path) as picture:                     # Pillow, exact for the other PNGs
        if spec.bits == 16:
            return as_expected(np.asarray(picture)[..., None], 65535, spec.orientation)
        grey = spec.layout in ("grey", "grey+alpha")
        viewed = np.asarray(picture.convert("L" if grey else "RGB"))
        return as_expected(viewed.reshape(spec.height, spec.width, -1), 255, spec.orientation)


def write_jpeg_case(spec: ImageFileSpec, path: Path, rng) -> np.ndarray:
    from PIL import Image
    channels = {"grey": 1, "colour": 3, "CMYK": 4}[spec.layout]
    samples = sample_values(rng, "uint8", (spec.height, spec.width, channels))
    mode = {1: "L", 3: "RGB", 4: "CMYK"}[channels]
    picture = Image.frombytes(mode, (spec.width, spec.height), samples.tobytes())
    exif = Image.Exif()
    exif[0x0112] = spec.orientation
    picture.save(path, quality=int(rng.integers(50, 96)), exif=exif)
    with Image.open(path) as decoded:                      # JPEG is lossy: the decoder's values
        viewed = np.asarray(decoded.convert("L" if channels == 1 else "RGB"))
    return as_expected(viewed.reshape(spec.height, spec.width, -1), 255, spec.orientation)


def write_tiff_case(spec: ImageFileSpec, path: Path, rng) -> np.ndarray | str:
    import tifffile
    photometric, count, extras = TIFF_LAYOUTS[spec.layout]
    shape = (spec.height, spec.width, count) if count > 1 else (spec.height, spec.width)
    samples = sample_values(rng, spec.dtype, shape)
    where = (rng.integers(spec.height), rng.integers(spec.width)) + ((0,) if count > 1 else ())
    if spec.special == "nan":                              # in the first sample: alpha would be dropped
        samples[where] = np.nan
    if spec.special == "huge":
        samples[where] = 2 ** 24 + 1 if spec.dtype != "float64" else 1e39
    colormap = None
    if photometric == "palette":
        colormap = rng.integers(0, 65536, (3, 2 ** spec.bits)).astype(np.uint16)
    stored = np.moveaxis(samples, -1, 0) if spec.planar else samples     # planar: (S, H, W)
    options = dict(photometric=photometric, planarconfig="separate" if spec.planar else "contig",
                   extrasamples=extras or None, colormap=colormap,
                   extratags=[(274, "H", 1, spec.orientation, True)])
    tifffile.imwrite(path, stored, **options)
    if spec.special == "two pages":
        tifffile.imwrite(path, stored, append=True, **options)
    if spec.layout in ("3 grey", "5 colour") or spec.special:
        return REFUSED
    values = tifffile.imread(path)                       # the scientific reader's values
    values = np.moveaxis(values, 0, -1) if spec.planar else values
    values = values.reshape(spec.height, spec.width, -1)
    if photometric == "palette":
        return as_expected(colormap.T[values[..., 0]], 65535, spec.orientation)
    levels = None if "float" in spec.dtype else 1 if spec.dtype == "bool" else min(2 ** spec.bits - 1, 65535)
    if photometric == "miniswhite":                       # 0 is white: shown turned round
        values = ~values if spec.dtype == "bool" else levels - values
    return as_expected(values[..., :3 if photometric == "rgb" else 1], levels, spec.orientation)


# ----------------------------------------------------------------- data folders (the user path)
# A folder of images and masks as a user brings one: any layout, depth and format of picture
# (image_file_specs), names with spaces, non-ASCII text and invalid UTF-8 bytes, hidden and
# system files, broken files, masks of every kind tinyseg reads (indices as grey, palette or
# 16-bit PNG, or TIFF; colour-coded with a colour table; ADE20K's reduce-zero) and of kinds it
# refuses (another size, JPEG, colour without a table). test_user_path_fuzz.py runs the real
# commands on it.
MASK_KINDS = ("grey", "grey", "palette", "16-bit", "tiff", "all ignore")
FLAWED_MASKS = ("other size", "jpeg")                               # refused
JUNK = (".DS_Store", "Thumbs.db", "._hidden.jpg", "desktop.ini")     # skipped
FLAWED_JUNK = ("notes.txt", "broken.png", "cut.jpg")                # refused


@dataclass
class UserFolder:
    """A data folder written by `user_folders`, and what tinyseg must read from it."""
    root: Path
    images: dict             # stem -> (image path, float32 (C, H, W) a reference reader gives, or REFUSED)
    labels: dict             # stem -> the mask's int64 (H, W) class labels (255: ignore), or REFUSED
    train: list | None       # the stems in train/ (layout train/ + val/), or None (one pool)
    options: list            # the folder's options of `tinyseg train` (--mask-colors FILE, ...)
    classes: int             # how many classes the masks use


@st.composite
def user_folders(draw, root: Path) -> UserFolder:
    """Write a data folder under `root` (a new, empty folder) and describe it.

    Half the folders are flawed (a mask of another size or in JPEG, a file
    that is no picture, a picture no reader gives exactly...), which tinyseg
    must refuse naming the file; the others hold only what it reads.
    """
    flawed = draw(st.booleans())
    count = draw(st.integers(2, 6))
    split = draw(st.booleans())
    classes = draw(st.integers(2, 4))
    coding = draw(st.sampled_from(["indices", "indices", "colours", "reduce zero"]))
    options = []
    table = None
    if coding == "colours":
        table = np.random.default_rng(draw(seeds)).permutation(256)[:classes * 3].reshape(classes, 3)
        (root / "classes.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / "classes.csv").write_text("name,r,g,b\n" + "".join(
            f"kind {i},{r},{g},{b}\n" for i, (r, g, b) in enumerate(table)))
        options += ["--mask-colors", str(root / "classes.csv")]
    if coding == "reduce zero":
        options.append("--reduce-zero-label")
    stems = draw(st.lists(file_stems(), min_size=count, max_size=count, unique_by=str.lower))
    train = sorted(draw(st.sets(st.sampled_from(stems), min_size=1, max_size=count - 1))) if split else None
    images, labels = {}, {}
    for stem in stems:
        part = root if not split else root / ("train" if stem in train else "val")
        large = draw(st.integers(0, 9)) == 0                        # now and then a few hundred pixels
        for _ in range(1 if flawed else 10):                        # a sound folder: readable pictures
            spec = draw(image_file_specs(max_side=200 if large else 20))
            path = part / "images" / (stem + spec.suffix)
            expected = write_image_file(spec, path)
            if isinstance(expected, np.ndarray) or flawed:
                break
            path.unlink()                                           # draw another picture
        shape = expected.shape[1:] if isinstance(expected, np.ndarray) else (spec.height, spec.width)
        images[stem] = (path, expected)
        kinds = MASK_KINDS + FLAWED_MASKS if flawed else MASK_KINDS
        labels[stem] = write_mask(part / "masks", stem, shape, classes, coding, table,
                                  draw(st.sampled_from(kinds)), draw(seeds))
    for name in draw(st.sets(st.sampled_from(JUNK + FLAWED_JUNK if flawed else JUNK), max_size=2)):
        write_junk((root if not split else root / "train") / "images" / name)
    return UserFolder(root, images, labels, train, options, classes)


def write_mask(folder: Path, stem: str, shape: tuple, classes: int, coding: str, table, kind: str,
               seed: int):
    """Write the mask of one image; return its class labels as tinyseg must read them, or REFUSED."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, shape)
    labels[rng.random(shape) < 0.1] = 255
    if kind == "all ignore":
        labels[:] = 255
    if kind == "other size":
        labels = np.zeros((shape[0] + 1, shape[1]), np.int64)
    if coding == "colours":
        labels[labels == 255] = 0                                  # a colour table names every pixel
        Image.fromarray(table[labels].astype(np.uint8)).save(folder / (stem + ".png"))
        return labels if kind != "other size" else REFUSED
    stored = labels if coding == "indices" else np.where(labels == 255, 0, labels + 1)   # reduce zero
    if kind in ("grey", "all ignore", "other size"):
        Image.fromarray(stored.astype(np.uint8)).save(folder / (stem + ".png"))
    elif kind == "palette":
        picture = Image.fromarray(stored.astype(np.uint8)).convert("P")
        picture.putpalette(rng.integers(0, 256, 768).tolist())
        picture.save(folder / (stem + ".png"))
    elif kind == "16-bit":
        Image.fromarray(stored.astype(np.uint16)).save(folder / (stem + ".png"))
    elif kind == "tiff":
        import tifffile
        tifffile.imwrite(folder / (stem + ".tif"), stored.astype(np.uint8))
    else:                                                          # a JPEG mask: refused
        Image.fromarray(stored.astype(np.uint8)).save(folder / (stem + ".jpg"))
    return REFUSED if kind in ("other size", "jpeg") else labels


def write_junk(path: Path) -> None:
    """A file a real folder holds beside the pictures: hidden, system, text, broken, cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name == "cut.jpg":
        from PIL import Image
        buffer = __import__("io").BytesIO()
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(buffer, format="JPEG")
        path.write_bytes(buffer.getvalue()[:200])
    else:
        path.write_bytes(b"not a picture\n")
