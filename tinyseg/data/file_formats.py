"""What a picture file holds, read exactly: its samples as stored, before any scale.

A file stores each pixel as a few numbers, its *samples*: one for grey, two
for grey + alpha, three for RGB, four for RGBA, or one index into a palette
of colours. Their type is the file's own: 1-bit, 2/4-bit, 8- or 16-bit
integers, 32-bit integers, 16/32/64-bit floats. Three libraries read them,
each only where it gives back every bit:

    PNG   Pillow; but Pillow cuts 16-bit colour, grey+alpha and RGBA (the
          header's colour types 2, 4, 6 at bit depth 16) to 8 bits, so pypng
          reads those (optional: pip install pypng).
    TIFF  tifffile (optional, the scientific reference): every bit depth,
          sample type, planar or chunky layout. Pillow only where tifffile is
          missing or cannot decode the file (a compression that needs the
          imagecodecs package), and only for the TIFFs Pillow reads whole:
          1- or 8-bit samples, or one 16-bit, int32 or float32 sample.
    JPEG  Pillow (8-bit, lossy: the decoder's values are the values).
    other Pillow (a BMP, GIF or WebP handed to predict).

The format comes from the file's first bytes, not its name, and for a PNG
the bit depth from its header (bytes 24-25), not from Pillow's mode: Pillow
calls a 16-bit RGB PNG "RGB", the same as an 8-bit one. Where no installed
reader gives the exact values, the file is refused with one line naming the
package that would: never a silently rounded picture.

`read_stored(path)` returns a Stored; images.py turns it into an image
(values scaled, orientation applied) or a mask (class indices or colours).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg.data.problems import DataError, file_error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")     # little/big-endian, BigTIFF
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_LAYOUTS = {0: "grey", 2: "colour", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
PILLOW_CUTS_TO_8_BITS = (2, 4, 6)               # PNG colour types Pillow reads only as 8 bits at depth 16
MINISWHITE, MINISBLACK, RGB, PALETTE = 0, 1, 2, 3    # TIFF Photometric values tinyseg reads itself
TIFF_LAYOUTS = {MINISWHITE: "grey (0 is white)", MINISBLACK: "grey", RGB: "colour", PALETTE: "palette",
                5: "CMYK", 6: "YCbCr"}
TIFFFILE_HINT = "pip install tifffile (or 'tinyseg[images]') to read it exactly"


@dataclass
class Stored:
    """The samples of one picture file, exactly as stored.

    samples: (H, W, S) in the file's own dtype: S = 1 grey (or a palette index),
        2 grey + alpha, 3 RGB, 4 RGBA; a TIFF may hold more (refused later).
    colour: the samples are R, G, B (+ alpha); otherwise grey (+ alpha).
    levels: the integer that means full brightness: 1 for 1-bit, 3 for
        2-bit, 255, 65535, and 65535 also for 32-bit integers; None for floats.
    palette: (K, 3) colours of a palette picture (uint8, or uint16 for TIFF), else None.
    min_is_white: a TIFF that stores grey as "0 is white" (Photometric MINISWHITE).
    orientation: the EXIF/TIFF Orientation tag, 1 (as stored) .. 8.
    format: "PNG", "TIFF", "JPEG", or Pillow's name of another format.
    kind: what the file is, for messages: "a 16-bit colour PNG".
    """
    samples: np.ndarray
    colour: bool
    levels: int | None
    palette: np.ndarray | None
    min_is_white: bool
    orientation: int
    format: str
    kind: str


def import_pillow():
    """The PIL.Image module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("reading image files needs Pillow: pip install 'tinyseg[images]'") from error
    return Image


def import_optional(name: str):
    """The module `name` (tifffile, png), or None if it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        return None


def read_stored(path) -> Stored:
    """The samples of the picture file at `path`, by the reader that is exact for it.

    Raises DataError naming the file if it is missing, no picture, cut short,
    a stack of several pictures, or a kind no installed reader gives exactly.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such file")
    with open(path, "rb") as file:
        head = file.read(26)
    if head.startswith(TIFF_SIGNATURES):
        return read_tiff(path)
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR" and head[25] in PNG_LAYOUTS:
        bits, colour_type = head[24], head[25]             # the header says what Pillow's mode hides
        kind = f"{bits}-bit {PNG_LAYOUTS[colour_type]} PNG"
        if bits == 16 and colour_type in PILLOW_CUTS_TO_8_BITS:
            return read_png_with_pypng(path, with_article(kind), colour=colour_type in (2, 6))
        return read_with_pillow(path, with_article(kind), bits)
    if head.startswith(JPEG_SIGNATURE):                    # (Pillow calls a phone's two-picture JPEG "MPO")
        return read_with_pillow(path, "a JPEG")
    return read_with_pillow(path)


def with_article(words: str) -> str:
    """"a 16-bit grey PNG", "an 8-bit grey PNG"."""
    return ("an " if words[0] in "8aeiouAEIOU" else "a ") + words


# ---------------------------------------------------------------- Pillow

def open_decoded(path, hint: str = "", source=None):
    """The Pillow image of `path` (read from `source`, a file object, if given), fully decoded,
    or a DataError naming the file with `hint` added.

    `Image.open` reads only the header; `.load()` decodes every pixel, so a
    truncated or corrupt file fails here, where the message can name it, and
    not later in the middle of training. Pillow reports broken files with
    several exception types (OSError, SyntaxError, ValueError, ...).
    """
    Image = import_pillow()
    try:
        picture = Image.open(path if source is None else source)
        picture.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        what = str(error).replace(repr(source), "it") if source is not None else str(error)
        raise file_error(path, f"not an image Pillow can read, or cut short ({what}){hint}") from None
    frames = getattr(picture, "n_frames", 1)
    if picture.format == "TIFF" and frames > 1:         # (a phone's JPEG may hold 2: photo + depth)
        picture.close()
        raise multi_page_error(path, frames)
    return picture


def channels_error(path, kind: str, count: int):
    return file_error(path, f"{kind} of {count} channels a pixel: tinyseg reads grey (1), grey + alpha "
                            "(2), RGB (3) or RGBA (4); save the channels you need as a grey or RGB image")


def multi_page_error(path, pages: int):
    return file_error(path, f"a stack of {pages} pictures (a multi-page TIFF); tinyseg reads one "
                            "picture a file: save each page as a file of its own")


def read_with_pillow(path, kind: str = "", png_bits: int = 8) -> Stored:
    """A PNG (but 16-bit colour), JPEG or other picture, read by Pillow, which is exact for it."""
    with open_decoded(path) as picture:
        samples, colour, levels, palette = pillow_samples(picture, path)
        if picture.format == "PNG" and picture.mode == "L" and png_bits in (2, 4):
            levels = 2 ** png_bits - 1              # Pillow stretched 0..3 (or 0..15) to 0..255:
            samples = samples // (255 // levels)    # give back the stored 0..3 (a mask's labels)
        form = "JPEG" if kind == "a JPEG" else picture.format or "image"
        kind = kind or with_article(f"{form} image ({picture.mode})")
        return Stored(samples, colour, levels, palette, False, exif_orientation(picture), form, kind)


def exif_orientation(picture) -> int:
    """The Orientation tag (0x0112) of a Pillow image's EXIF, 1 if there is none (or it is no number)."""
    value = picture.getexif().get(0x0112, 1)
    return value if isinstance(value, int) else 1


def pillow_samples(picture, path) -> tuple:
    """(samples (H, W, S), colour, levels, palette) of a decoded Pillow image, by its mode."""
    mode = picture.mode
    if mode == "1":                                                   # 1-bit: False/True
        return np.asarray(picture)[..., None], False, 1, None
    if mode in ("L", "LA", "RGB", "RGBA", "RGBX"):
        samples = np.asarray(picture)
        samples = samples[..., None] if samples.ndim == 2 else samples
        return samples, mode.startswith("RGB"), 255, None
    if mode in ("P", "PA"):                                           # indices into a palette
        indices = np.asarray(picture)
        indices = indices[..., None] if indices.ndim == 2 else indices[..., :1]
        palette = np.asarray(picture.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
        return indices, True, 255, palette
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):                       # Pillow's own RGB conversion
        return np.asarray(picture.convert("RGB")), True, 255, None
    if mode.startswith("I;16"):
        return np.asarray(picture).astype(np.uint16)[..., None], False, 65535, None
    if mode == "I":
        return np.asarray(picture, dtype=np.int32)[..., None], False, 65535, None
    if mode == "F":
        return np.asarray(picture, dtype=np.float32)[..., None], False, None, None
    raise file_error(path, f"a picture of Pillow mode {mode!r}, which tinyseg does not read: "
                           "save it as a grey or RGB PNG or TIFF")


# ---------------------------------------------------------------- PNG, 16-bit colour

def read_png_with_pypng(path, kind: str, colour: bool) -> Stored:
    """A 16-bit colour, grey+alpha or RGBA PNG, read whole by pypng (Pillow would cut it to 8 bits)."""
    with open_decoded(path) as picture:                 # the file is whole, and its EXIF turn
        orientation = exif_orientation(picture)
    png = import_optional("png")
    if png is None:
        raise file_error(path, f"{kind}, which Pillow reads only as 8 bits: pip install pypng (or "
                               "'tinyseg[images]') to read it exactly, or save it as a 16-bit TIFF")
    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        samples = np.array([np.asarray(row, dtype=np.uint16) for row in rows], dtype=np.uint16)
    except (png.Error, ValueError, OSError) as error:
        raise file_error(path, f"{kind} pypng cannot read, or cut short ({error})") from None
    samples = samples.reshape(height, width, info["planes"])
    return Stored(samples, colour, 65535, None, False, orientation, "PNG", kind)


# ---------------------------------------------------------------- TIFF

def read_tiff(path) -> Stored:
    """A TIFF by tifffile, where it is installed and decodes the file; else by Pillow if exact."""
    tifffile = import_optional("tifffile")
    if tifffile is None:
        return read_tiff_with_pillow(path, TIFFFILE_HINT)
    try:
        with tifffile.TiffFile(path) as tiff:
            if len(tiff.pages) > 1:
                raise multi_page_error(path, len(tiff.pages))
            page = tiff.pages[0]
            if page.photometric in (MINISWHITE, MINISBLACK, RGB, PALETTE):
                return tiff_page(page, path)
            why = f"tifffile gives its {page.photometric.name} samples, not RGB"
    except DataError:
        raise
    except Exception as error:     # noqa: BLE001  (a decoder fed a broken file may raise anything)
        why = f"tifffile could not read it either ({error})"
    return read_tiff_with_pillow(path, why)


def tiff_page(page, path) -> Stored:
    """The Stored samples of one tifffile page: planar (S, H, W) or chunky (H, W, S) alike."""
    samples, axes = page.asarray(), page.axes
    if set(axes) - set("SYX") or samples.ndim != len(axes):
        raise file_error(path, f"a TIFF page of shape {page.shape} (axes {axes}): tinyseg reads "
                               "one picture of rows and columns")
    if "S" not in axes:
        samples = samples[..., None]                       # (H, W) -> (H, W, 1)
    elif axes.index("S") == 0:
        samples = np.moveaxis(samples, 0, -1)              # planar (S, H, W) -> (H, W, S)
    bits = page.bitspersample
    is_float = samples.dtype.kind == "f"
    levels = None if is_float else 1 if samples.dtype == bool else 2 ** min(bits, 16) - 1
    palette = None
    if page.photometric == PALETTE:
        if page.colormap is None:
            raise file_error(path, "a palette TIFF without its colour map")
        palette = np.asarray(page.colormap, dtype=np.uint16).T            # (K, 3) out of 65535
    tag = page.tags.get(274)                                               # Orientation
    return Stored(samples, page.photometric == RGB, levels, palette, page.photometric == MINISWHITE,
                  int(tag.value) if tag else 1, "TIFF",
                  tiff_kind(bits, int(page.sampleformat), int(page.photometric)))


def tiff_kind(bits: int, sample_format: int, photometric: int) -> str:
    """"a 16-bit colour TIFF", "a 32-bit float grey TIFF", from the TIFF's tags."""
    number = {2: "signed ", 3: "float "}.get(sample_format, "")
    layout = TIFF_LAYOUTS.get(photometric, f"Photometric {photometric}")
    return with_article(f"{bits}-bit {number}{layout} TIFF")


def read_tiff_with_pillow(path, why: str) -> Stored:
    """A TIFF by Pillow, if Pillow reads this one whole; else a DataError saying `why` not tifffile.

    Pillow reads 1- and 8-bit samples, and a single 16-bit, int32 or float32
    sample, as stored; it cuts 16-bit RGB to 8 bits, misreads int8, turns only
    some "0 is white" TIFFs round, and cannot open float16/64 or 2-sample 16-bit.
    """
    # From bytes, not from the file: Pillow 13 turns a TIFF by its Orientation tag as it loads it, and
    # gets 5..8 wrong on an uncompressed grey file it maps into memory (the size stays unturned).
    with open_decoded(path, f"; {why}", io.BytesIO(Path(path).read_bytes())) as picture:
        tags = picture.tag_v2
        bits = tuple(np.atleast_1d(tags.get(258, (1,))).tolist())         # BitsPerSample
        formats = set(np.atleast_1d(tags.get(339, (1,))).tolist())        # SampleFormat: 1 uint, 2 int, 3 fl.
        photometric = tags.get(262, MINISBLACK)
        whole = (formats == {1} and set(bits) <= {1, 8}) or (
            len(bits) == 1 and (min(formats), bits[0]) in ((1, 16), (2, 16), (2, 32), (3, 32)))
        kind = tiff_kind(max(bits), max(formats), photometric)
        if photometric == MINISWHITE:
            raise file_error(path, f"{kind}, which Pillow turns round at some bit depths and not at "
                                   f"others: {why}")
        if not whole:
            how = "reads only as 8 bits" if len(bits) > 1 and max(bits) > 8 else "does not read exactly"
            raise file_error(path, f"{kind}, which Pillow {how}: {why}")
        if tags.get(277, 1) != len(picture.getbands()):              # SamplesPerPixel
            raise channels_error(path, kind, tags.get(277, 1))           # (Pillow keeps the first ones)
        samples, colour, levels, palette = pillow_samples(picture, path)
        if photometric == PALETTE and 320 in tags:               # the colour map as stored, 16-bit
            palette = np.asarray(tags[320], dtype=np.uint16).reshape(3, -1).T
        return Stored(samples, colour, levels, palette, False, exif_orientation(picture), "TIFF", kind)
