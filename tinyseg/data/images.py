"""Reading image and mask files (exactly, or not at all), and resizing them.

A file holds samples (file_formats.py reads them with the library that is
exact for each kind); `read_image` turns them into float32 (C, H, W):

    file                                    channels  value
    1-bit (PNG, TIFF)                       grey      0 or 1
    2-, 4-bit grey PNG (n-bit TIFF)         grey      value / 3, value / 15 (value / (2**n - 1))
    8-bit grey, colour (PNG, JPEG, TIFF)    1 or 3    value / 255
    16-bit grey, colour (PNG, TIFF)         1 or 3    value / 65535
    palette (PNG, TIFF)                     3         its colours: / 255 (PNG), / 65535 (TIFF's
                                                      16-bit colour map)
    signed 8-, 16-bit TIFF                  1 or 3    value / 255, / 65535 (so -0.5 .. 0.5)
    32-bit integer TIFF (signed or not)     1 or 3    value / 65535, if every |value| <= 2**24;
                                                      above, float32 cannot hold it: refused
    float16, float32 TIFF                   1 or 3    as stored
    float64 TIFF                            1 or 3    rounded to the nearest float32
                                                      (beyond +-3.4e38: refused)
    CMYK, YCbCr (JPEG, 8-bit TIFF)          3         Pillow's conversion to RGB, / 255

Grey + alpha gives grey, RGBA gives RGB: alpha is dropped (a TIFF's one
extra sample too). More channels than that (a 5-channel TIFF, or 3 grey
channels that are not RGB) is refused naming the count; so are NaN and
infinite values, multi-page TIFFs, and a 16-bit colour PNG without pypng or
a TIFF Pillow cannot read whole without tifffile (the message names the
`pip install`). A TIFF that stores grey as "0 is white" (MINISWHITE) is
turned round (v -> levels - v), as a viewer shows it.

Images are read the way an image viewer shows them. A phone stores a photo
taken upright as a landscape picture plus an "Orientation" tag (EXIF) that
says "turn me 90 degrees"; viewers obey the tag, so the mask someone drew
on the photo was drawn on the turned picture. `read_image` applies the tag
too, from the EXIF of a JPEG or PNG and from a TIFF's own tag, at every bit
depth (ORIENTATIONS below). A mask is class indices, not a photo, and is
read as stored: no turn, no scale, and 0 is 0 also in a MINISWHITE TIFF.

These scales only make the numbers readable; they do not matter to
training, which normalises every channel by the mean and standard
deviation of the training images (normalize.py). A 16-bit microscope image
that uses values 900..1400 of 65535 reaches the model with the same spread
as a photograph that uses the whole 0..255.

Resizing (load_folder's `scale`) has two rules, one per kind of array:

    image: bilinear. Each output pixel centre is mapped back into the input
           ((i + 0.5) * in / out - 0.5) and the four nearest input pixels
           are mixed by distance, as torch's interpolate(align_corners=False).
    mask:  nearest. Each output pixel takes the label of the input pixel its
           centre falls in. Mixing labels would invent classes: halfway
           between "road" (1) and "sky" (3) is not "car" (2).
"""

from __future__ import annotations

import os

import numpy as np

from tinyseg.data.file_formats import (Stored, channels_error, import_pillow,  # noqa: F401 (callers
                                       open_decoded, read_stored)                 # import them here)
from tinyseg.data.problems import file_error

LARGEST_EXACT_INTEGER = 2 ** 24            # float32 holds every integer up to here, and not 2**24 + 1
JPEG_MASK_PROBLEM = ("a JPEG; masks must be PNG or TIFF (JPEG compression changes the label values "
                     "at every edge)")

# Orientation tag -> (swap rows and columns?, then flip rows?, then flip columns?), as a viewer turns.
ORIENTATIONS = {1: (False, False, False),   # as stored
                2: (False, False, True),    # mirrored left-right
                3: (False, True, True),     # turned 180 degrees
                4: (False, True, False),    # mirrored top-bottom
                5: (True, False, False),    # transposed (mirrored along the main diagonal)
                6: (True, False, True),     # turned 90 degrees clockwise (a phone held upright)
                7: (True, True, True),      # transposed along the other diagonal
                8: (True, True, False)}     # turned 90 degrees counter-clockwise


def read_image(path, *older_call) -> np.ndarray:
    """The image file at `path` as float32 (C, H, W), C = 1 (grey) or 3 (colour).

    Values as the table at the top says, orientation applied. Raises
    DataError naming the file if it is missing, unreadable, cut short, holds
    NaN or infinite values, or cannot be read exactly (the message says how).
    (`read_image(Image, path)`, the earlier form that passed the Pillow
    module, still works: the module is imported here now.)
    """
    if older_call:
        path = older_call[0]
    stored = read_stored(path)
    samples, levels = image_samples(stored, path)                   # (H, W, 1 or 3)
    image = as_viewed(scaled(samples, levels, path), stored.orientation)
    return np.ascontiguousarray(image.transpose(2, 0, 1))          # (C, H, W)


def image_samples(stored: Stored, path) -> tuple[np.ndarray, int | None]:
    """(the grey or R, G, B samples (H, W, 1 or 3), their levels): colours looked up, alpha dropped."""
    if stored.palette is not None:
        return palette_colours(stored, path), int(np.iinfo(stored.palette.dtype).max)
    count, wanted = stored.samples.shape[-1], 3 if stored.colour else 1
    if count not in (wanted, wanted + 1):
        raise channels_error(path, stored.kind, count)
    samples = stored.samples[..., :wanted]                           # alpha dropped
    if stored.min_is_white:
        if samples.dtype.kind not in "bu":
            raise file_error(path, f"{stored.kind} of {samples.dtype} values stored as '0 is white': "
                                   "save it as ordinary grey")
        samples = ~samples if samples.dtype == bool else stored.levels - samples
    return samples, stored.levels


def palette_colours(stored: Stored, path) -> np.ndarray:
    """The colours (H, W, 3) of a palette picture's indices; an index past the palette is black."""
    indices = stored.samples[..., 0].astype(np.int64)
    palette = stored.palette
    if indices.size and indices.max() >= len(palette):
        palette = np.concatenate([palette, np.zeros((indices.max() + 1 - len(palette), 3), palette.dtype)])
    return palette[indices]


def scaled(samples: np.ndarray, levels: int | None, path) -> np.ndarray:
    """float32 samples: integers / levels (1-bit 0 or 1), floats as stored; refuses what float32 cannot hold."""
    if samples.dtype == bool:
        return samples.astype(np.float32)
    if samples.dtype.kind in "iu":
        largest = max(abs(int(samples.min())), abs(int(samples.max()))) if samples.size else 0
        if largest > LARGEST_EXACT_INTEGER:
            raise file_error(path, f"holds the value {largest}, beyond 2**24 = {LARGEST_EXACT_INTEGER}, "
                                   "which float32 cannot hold exactly: rescale it to 16 bits, or save "
                                   "it as float32")
        return samples.astype(np.float32) / np.float32(levels)
    if not np.isfinite(samples).all():
        raise file_error(path, "holds NaN or infinite values")
    if samples.dtype.itemsize > 4 and samples.size and np.abs(samples).max() > np.finfo(np.float32).max:
        raise file_error(path, "holds values beyond float32's range (+-3.4e38)")
    return samples.astype(np.float32)


def as_viewed(array: np.ndarray, orientation: int) -> np.ndarray:
    """`array` (H, W, ...) turned as the Orientation tag tells a viewer; unknown tags as 1."""
    swap, flip_rows, flip_columns = ORIENTATIONS.get(orientation, ORIENTATIONS[1])
    if swap:
        array = array.swapaxes(0, 1)
    if flip_rows:
        array = array[::-1]
    if flip_columns:
        array = array[:, ::-1]
    return array


def read_mask(path, labels=None) -> np.ndarray:
    """The mask file at `path` as int64 (H, W) class indices, read as stored (no EXIF turn).

    labels: a MaskLabels (mask_labels.py) that turns the file's values, or
        its colours, into class indices; None reads the values as they are.
    Without a colour table a mask must be one channel of integers: a grey
    PNG or TIFF (1..16-bit, or 32-bit), or a palette PNG, which gives its
    indices, not its colours. JPEG, colour and float masks are refused with
    a DataError naming the file, as are colours missing from the table.
    (`read_mask(Image, path)`, the earlier form, still works.)
    """
    if isinstance(labels, (str, os.PathLike)):                  # read_mask(Image, path)
        path, labels = labels, None
    stored = read_stored(path)
    if stored.format == "JPEG":
        raise file_error(path, JPEG_MASK_PROBLEM)
    if labels is not None and labels.reads_colors:
        return labels.decode(mask_colors(stored, path), path)
    indices = mask_indices(stored, path)
    return indices if labels is None else labels.decode(indices, path)


def mask_indices(stored: Stored, path) -> np.ndarray:
    """The class indices (H, W) int64 of a one-channel integer (or palette) mask."""
    count = stored.samples.shape[-1]
    if stored.palette is None and (count != 1 or stored.colour):
        raise file_error(path, f"a mask of {count} channels ({stored.kind}); a mask must be one "
                               "channel of class indices (a grey or palette PNG), or give the colours "
                               "of colour-coded masks with --mask-colors FILE (a CSV of name,r,g,b)")
    if stored.samples.dtype.kind == "f":
        raise file_error(path, f"a mask of floating-point values ({stored.kind}); a mask holds class "
                               "indices: save it as 8- or 16-bit integers")
    return stored.samples[..., 0].astype(np.int64)


def mask_colors(stored: Stored, path) -> np.ndarray:
    """The 8-bit colours (H, W, 3) uint8 of a colour-coded mask, as a viewer shows them.

    RGB(A) gives its colours (alpha dropped), a palette its palette's colours
    (a TIFF's 16-bit colour map by its high byte), grey v the colour (v, v, v)
    (1-, 2-, 4-bit grey stretched to 0..255 as shown: 1-bit white is 255).
    """
    if stored.palette is not None:
        colours = palette_colours(stored, path)
        return (colours >> 8 if colours.dtype == np.uint16 else colours).astype(np.uint8)
    samples, levels = image_samples(stored, path)
    if samples.dtype.kind not in "bu" or levels > 255:
        raise file_error(path, f"a colour-coded mask must hold 8-bit colours (0..255), but this is "
                               f"{stored.kind}")
    colours = samples.astype(np.uint16) * (255 // levels)                 # 1-bit: 0/1 -> 0/255
    return np.broadcast_to(colours, colours.shape[:2] + (3,)).astype(np.uint8)


# ---------------------------------------------------------------- resizing

def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(round(height * scale), round(width * scale)), at least 1 pixel each."""
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def bilinear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: (lower input index, upper input index, weight of the upper).

    Output pixel i has its centre at input coordinate (i + 0.5) * in / out - 0.5,
    clamped to [0, in - 1] so the border pixels are repeated, not faded.
    """
    centre = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    centre = np.clip(centre, 0, size_in - 1)
    lower = np.floor(centre).astype(np.int64)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, (centre - lower).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (C, H, W) to (C, size[0], size[1]): rows first, then columns."""
    _, height, width = image.shape
    if (height, width) == tuple(size):
        return image
    top, bottom, down = bilinear_taps(height, size[0])
    rows = image[:, top] * (1 - down)[:, None] + image[:, bottom] * down[:, None]   # (C, h, W)
    left, right, across = bilinear_taps(width, size[1])
    return (rows[:, :, left] * (1 - across) + rows[:, :, right] * across).astype(np.float32)


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """The input index whose pixel holds the centre of each output pixel."""
    index = np.floor((np.arange(size_out) + 0.5) * (size_in / size_out)).astype(np.int64)
    return np.minimum(index, size_in - 1)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (H, W) labels to `size`: every label is one of the input's."""
    height, width = mask.shape
    if (height, width) == tuple(size):
        return mask
    return mask[nearest_indices(height, size[0])][:, nearest_indices(width, size[1])]
