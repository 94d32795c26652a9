"""Every picture file is read at its full precision or refused in one line: never a silent wrong answer.

The cases are drawn (tests/strategies.py: image_files): PNG, JPEG and TIFF at every bit depth and
channel layout they allow, written by reference writers and read back by reference readers
(tifffile; Pillow where it is exact; pypng for 16-bit colour PNG). The property is one function,
check_read: read_image gives exactly the reference values, scaled as images.py's table says, or a
DataError of one line that names the file.
"""

import os
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from PIL import Image, ImageOps

from strategies import (ImageFileSpec, image_file_specs, image_files, image_folder,
                        write_image_file)
from tinyseg.data import DataError, read_image, read_mask

tifffile = pytest.importorskip("tifffile")
WITHOUT_OPTIONAL_READERS = {"tifffile": None, "png": None}       # `import tifffile` raises ImportError


def check_read(path, expected) -> str:
    """The property: read_image(path) equals `expected` exactly, or, where expected is REFUSED,
    raises a DataError of one line naming the file. Returns "read", or the refusal."""
    if isinstance(expected, str):
        return check_refused(read_image, path)
    image = read_image(path)
    assert image.dtype == np.float32 and image.shape == expected.shape
    np.testing.assert_array_equal(image, expected)
    return "read"


def check_refused(reader, path) -> str:
    with pytest.raises(DataError) as caught:
        reader(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"  {path}: "), lines   # "1 problem in DIR:", one line
    return lines[1].split(": ", 1)[1]


@settings(max_examples=300)
@given(case=image_files())
@example(case=(image_folder() / "example-planar-rgba-f16.tif",      # NaN in alpha, which is dropped:
               ImageFileSpec("TIFF", "RGBA", "float16", 16, 1, 4, 0, special="nan")))   # read, not refused
@example(case=(image_folder() / "example-5-samples.tif",
               ImageFileSpec("TIFF", "5 colour", "uint8", 8, 1, 1, 0)))
def test_every_picture_file_is_read_exactly_or_refused(case):
    path, expected = case
    if isinstance(expected, ImageFileSpec):                      # an @example: written here
        expected = write_image_file(expected, path)
    check_read(path, expected)


@settings(max_examples=200)
@given(case=image_files())
@example(case=(image_folder() / "example-turned-grey.tif",    # Pillow 13 turns an uncompressed grey
               ImageFileSpec("TIFF", "grey", "uint8", 8, 1, 2, 0, orientation=5)))   # TIFF wrongly
@example(case=(image_folder() / "example-5-samples-pillow.tif",   # Pillow keeps 3 of 5 samples
               ImageFileSpec("TIFF", "5 colour", "uint8", 8, 1, 1, 0)))
def test_without_tifffile_and_pypng_a_file_is_still_read_exactly_or_refused(case):
    path, expected = case
    if isinstance(expected, ImageFileSpec):
        expected = write_image_file(expected, path)
    with mock.patch.dict(sys.modules, WITHOUT_OPTIONAL_READERS):
        try:
            image = read_image(path)
        except DataError:
            check_refused(read_image, path)                      # one line naming the file
            return
    assert not isinstance(expected, str), f"{path} was read, but no reader gives it exactly"
    np.testing.assert_array_equal(image, expected)


@settings(max_examples=100)
@given(spec=image_file_specs(formats=("PNG", "TIFF")))
def test_a_mask_file_gives_its_stored_integers_or_is_refused(spec):
    path = write_spec(spec, "mask")
    one_channel_integers = (spec.layout in ("grey", "palette", "min-is-white")
                            and "float" not in spec.dtype and spec.special != "two pages")
    if not one_channel_integers:
        check_refused(read_mask, path)
        return
    mask = read_mask(path)
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, stored_integers(path, spec))   # as stored: no turn, no scale


def write_spec(spec, stem: str):
    path = image_folder() / f"{stem}-{spec.seed}-{spec.layout}-{spec.dtype}{spec.suffix}"
    write_image_file(spec, path)
    return path


def stored_integers(path, spec) -> np.ndarray:
    """The integers a file stores, by the reference readers: tifffile, pypng (which does not stretch
    2- and 4-bit grey as Pillow does), Pillow for the rest."""
    if spec.format == "TIFF":
        return tifffile.imread(path).astype(np.int64)
    png = pytest.importorskip("png")
    width, height, rows, _ = png.Reader(filename=str(path)).read()
    return np.array([np.asarray(row) for row in rows], np.int64).reshape(height, width)


# ---------------------------------------------------------------- explicit cases


def test_a_dim_16_bit_rgb_tiff_keeps_its_values(tmp_path):
    """Pillow reads 16-bit RGB as its high byte: 800..1000 all become 3, a picture of one value."""
    values = np.random.default_rng(0).integers(800, 1001, (6, 7, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "dim.tif", values, photometric="rgb")
    image = read_image(tmp_path / "dim.tif")
    assert image.shape == (3, 6, 7) and image.std() > 0
    np.testing.assert_array_equal(image * np.float32(65535), values.transpose(2, 0, 1).astype(np.float32))


@pytest.mark.parametrize("colour_type", [2, 4, 6])
def test_a_16_bit_colour_png_is_read_by_pypng_or_refused_naming_it(tmp_path, colour_type):
    spec = ImageFileSpec("PNG", {2: "colour", 4: "grey+alpha", 6: "RGBA"}[colour_type], "uint16", 16, 3,
                         4, seed=1)
    path = tmp_path / "deep.png"
    expected = write_image_file(spec, path)
    if not isinstance(expected, str):
        check_read(path, expected)
    with mock.patch.dict(sys.modules, WITHOUT_OPTIONAL_READERS):
        refusal = check_refused(read_image, path)
    assert "PNG, which Pillow reads only as 8 bits: pip install pypng" in refusal


def test_a_16_bit_colour_tiff_without_tifffile_is_refused_naming_it(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", np.full((2, 3, 3), 900, np.uint16), photometric="rgb")
    with mock.patch.dict(sys.modules, WITHOUT_OPTIONAL_READERS):
        refusal = check_refused(read_image, tmp_path / "deep.tif")
    assert refusal.startswith("a 16-bit colour TIFF, which Pillow reads only as 8 bits: pip install tifffile")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_orientation_is_applied_as_pillow_exif_transpose_does(tmp_path, orientation, suffix):
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3)).astype(np.uint8)
    path = tmp_path / f"turned{suffix}"
    if suffix == ".tif":                                           # read by tifffile, turned by tinyseg
        tifffile.imwrite(path, stored, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(path, exif=exif, quality=95)
    with Image.open(path) as picture:
        viewed = np.asarray(ImageOps.exif_transpose(picture).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), viewed.transpose(2, 0, 1) / np.float32(255))


def test_masks_are_read_exactly_through_the_same_readers(tmp_path):
    labels = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    tifffile.imwrite(tmp_path / "deep.tif", labels.astype(np.uint16) * 100)          # 16-bit grey TIFF
    assert np.array_equal(read_mask(tmp_path / "deep.tif"), labels.astype(np.int64) * 100)
    tifffile.imwrite(tmp_path / "bits.tif", labels % 2 == 1)                           # 1-bit, 0 is white
    assert np.array_equal(read_mask(tmp_path / "bits.tif"), labels % 2)                # as stored
    png = pytest.importorskip("png")
    with open(tmp_path / "two_bit.png", "wb") as file:                                 # 2-bit grey PNG:
        png.Writer(4, 2, greyscale=True, bitdepth=2).write(file, labels.tolist())      # Pillow says 0..255
    assert np.array_equal(read_mask(tmp_path / "two_bit.png"), labels)
    np.testing.assert_array_equal(read_image(tmp_path / "two_bit.png")[0], labels / np.float32(3))
    Image.fromarray(labels).save(tmp_path / "lzw.tif", compression="tiff_lzw")         # tifffile needs
    assert np.array_equal(read_mask(tmp_path / "lzw.tif"), labels)                     # imagecodecs: Pillow
    tifffile.imwrite(tmp_path / "float.tif", labels.astype(np.float32))
    assert "floating-point" in check_refused(read_mask, tmp_path / "float.tif")


def test_signed_and_32_bit_integer_tiffs(tmp_path):
    signed = np.array([[-128, -1, 0, 127]], np.int8)                # Pillow reads int8 as wrong bytes
    tifffile.imwrite(tmp_path / "int8.tif", signed)
    np.testing.assert_array_equal(read_image(tmp_path / "int8.tif"), (signed[None] / 255).astype(np.float32))
    wide = np.array([[0, 70000, 2 ** 24]], np.int32)
    tifffile.imwrite(tmp_path / "int32.tif", wide)
    np.testing.assert_array_equal(read_image(tmp_path / "int32.tif"), (wide[None] / 65535).astype(np.float32))
    tifffile.imwrite(tmp_path / "big.tif", wide + 1)
    assert "16777217, beyond 2**24" in check_refused(read_image, tmp_path / "big.tif")


def test_more_than_four_channels_is_refused_naming_the_count(tmp_path):
    tifffile.imwrite(tmp_path / "six.tif", np.zeros((2, 3, 6), np.uint8), photometric="rgb",
                     planarconfig="contig", extrasamples=["unspecified"] * 3)
    assert "of 6 channels a pixel" in check_refused(read_image, tmp_path / "six.tif")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")         # Pillow's, about the broken TIFF
@pytest.mark.parametrize("name", ["with space", "été", "日本", os.fsdecode(b"bad\xff")])
def test_awkward_file_names_are_read_and_named(tmp_path, name):
    path = tmp_path / f"{name}.png"
    Image.fromarray(np.full((2, 3), 7, np.uint8)).save(path)
    assert read_image(path).shape == (1, 2, 3) and read_mask(path).max() == 7
    broken = tmp_path / f"{name}.tif"
    broken.write_bytes(b"II*\x00 not a tiff")
    assert check_refused(read_image, broken)                        # the message is a str naming it
