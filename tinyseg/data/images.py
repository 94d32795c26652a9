"""Reading image and mask files, and resizing them.

Images are read the way an image viewer shows them. A phone stores a photo
taken upright as a landscape picture plus an "Orientation" tag (EXIF) that
says "turn me 90 degrees"; viewers obey the tag, so the mask someone drew
on the photo was drawn on the turned picture. `read_image` applies the tag
too. A mask is class indices, not a photo, and is read as stored.

    file                          read_image gives float32 (C, H, W)
    PNG/JPEG, 8-bit grey          (1, H, W)  value / 255          -> [0, 1]
    PNG/JPEG, colour (RGB, RGBA,  (3, H, W)  value / 255          -> [0, 1]
      palette, CMYK)                         (alpha dropped)
    PNG/TIFF, 16-bit grey         (1, H, W)  value / 65535        -> [0, 1]
    TIFF, 32-bit integer ("I")    (1, H, W)  value / 65535        (Pillow also reads
                                                                   some 16-bit files so)
    TIFF, 32-bit float ("F")      (1, H, W)  the values as stored

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

Pillow reads the files; it is imported only when a file is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyseg.data.problems import file_error

MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")
GREY_8_BIT_MODES = ("1", "L", "LA")


def import_pillow():
    """The PIL.Image module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("reading image files needs Pillow: pip install 'tinyseg[images]'") from error
    return Image


def open_decoded(path):
    """The Pillow image of `path`, fully decoded, or a DataError naming the file.

    `Image.open` reads only the header; `.load()` decodes every pixel, so a
    truncated or corrupt file fails here, where the message can name it, and
    not later in the middle of training. Pillow reports broken files with
    several exception types (OSError, SyntaxError, ValueError, ...).
    """
    Image = import_pillow()
    if not Path(path).is_file():
        raise file_error(path, "no such file")
    try:
        picture = Image.open(path)
        picture.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise file_error(path, f"not an image Pillow can read, or cut short ({error})") from None
    frames = getattr(picture, "n_frames", 1)
    if picture.format == "TIFF" and frames > 1:         # (a phone's JPEG may hold 2: photo + depth)
        picture.close()
        raise file_error(path, f"a stack of {frames} pictures (a multi-page TIFF); tinyseg reads one "
                               "picture a file: save each page as a file of its own")
    return picture


def read_image(path, *older_call) -> np.ndarray:
    """The image file at `path` as float32 (C, H, W), C = 1 (grey) or 3 (colour).

    EXIF orientation applied; value scales as the table at the top says.
    Raises DataError naming the file if it is missing, unreadable, cut short,
    or holds NaN or infinite values.
    (`read_image(Image, path)`, the earlier form that passed the Pillow
    module, still works: the module is imported here now.)
    """
    if older_call:
        path = older_call[0]
    with open_decoded(path) as stored:
        from PIL import ImageOps                                 # Pillow is there: open worked
        picture = ImageOps.exif_transpose(stored)                # as a viewer shows it
        mode = picture.mode
        if mode.startswith("I;16") or mode == "I":
            image = (np.asarray(picture, dtype=np.float32) / 65535.0)[None]     # (1, H, W)
        elif mode == "F":
            image = np.asarray(picture, dtype=np.float32)[None].copy()
        elif mode in GREY_8_BIT_MODES:
            image = (np.asarray(picture.convert("L"), dtype=np.float32) / 255.0)[None]
        else:
            rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
            image = rgb.transpose(2, 0, 1).copy()                             # (3, H, W)
    if not np.isfinite(image).all():
        raise file_error(path, "holds NaN or infinite values")
    return image


def read_mask(path, *older_call) -> np.ndarray:
    """The mask file at `path` as int64 (H, W) class indices, read as stored (no EXIF turn).

    A palette ("P") PNG gives its indices, not its colours. A coloured or
    floating-point picture is refused with a DataError naming the file.
    (`read_mask(Image, path)`, the earlier form, still works.)
    """
    if older_call:
        path = older_call[0]
    with open_decoded(path) as picture:
        if picture.mode not in MASK_MODES:
            raise file_error(path, f"a mask of mode {picture.mode!r} ({len(picture.getbands())} "
                             "channel(s)); a mask must be one channel of class indices (a grey 'L' "
                             "or palette 'P' PNG), not a coloured picture")
        return np.asarray(picture).astype(np.int64)


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
