"""Tests of tinyseg.visualize: palette, colorize, overlays, PNG masks, grids and curves."""

import sys

import numpy as np
import pytest
from PIL import Image

from tinyseg.data.folder import import_pillow, read_mask
from tinyseg.visualize import (BACKGROUND, GAP, PALETTE, TITLE_HEIGHT, colorize, overlay, plot_history,
                               save_grid, save_mask_png, to_display)


def test_palette_is_fixed_and_distinct():
    assert PALETTE.shape == (256, 3) and PALETTE.dtype == np.uint8
    assert PALETTE[0].tolist() == [0, 0, 0]                    # background black
    assert PALETTE[255].tolist() == [255, 255, 255]            # ignore white
    first = PALETTE[:20].astype(int)
    distance = np.linalg.norm(first[:, None] - first[None], axis=2) + 1000 * np.eye(20)
    assert distance.min() > 40                                 # the first 20 are easy to tell apart
    assert len({tuple(c) for c in PALETTE[:255]}) == 255      # every class its own colour


def test_colorize_looks_up_the_palette():
    mask = np.array([[0, 1], [2, 255]])
    colours = colorize(mask)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    assert np.array_equal(colours[1, 0], PALETTE[2])
    assert np.array_equal(colours[1, 1], [255, 255, 255])
    with pytest.raises(ValueError, match="0..255"):
        colorize(np.array([[256]]))
    with pytest.raises(ValueError, match="integer"):
        colorize(np.array([[0.5]]))


def test_save_mask_png_round_trip(tmp_path):
    mask = np.random.default_rng(0).integers(0, 6, (9, 11))
    mask[0, :3] = 255
    path = tmp_path / "mask.png"
    save_mask_png(path, mask)
    with Image.open(path) as picture:
        assert picture.mode == "P" and picture.size == (11, 9)
        assert np.array_equal(np.asarray(picture), mask)                    # indices, not colours
        palette = np.array(picture.getpalette()[:768]).reshape(256, 3)
    assert np.array_equal(palette, PALETTE)                                 # viewers see our colours
    assert np.array_equal(read_mask(import_pillow(), path), mask)           # and load_folder reads it


def test_save_mask_png_needs_a_2d_mask(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        save_mask_png(tmp_path / "m.png", np.zeros((2, 3, 4), int))


def test_to_display_stretches_each_image():
    image = np.array([[[-2.0, 0.0], [1.0, 2.0]]])             # (1, 2, 2) grey
    shown = to_display(image)
    assert shown.shape == (2, 2, 3) and shown.dtype == np.uint8
    assert shown[0, 0].tolist() == [0, 0, 0] and shown[1, 1].tolist() == [255, 255, 255]
    assert shown[0, 1].tolist() == [128] * 3                    # the middle of the range
    rgb = np.random.default_rng(1).random((3, 4, 5))
    assert np.array_equal(to_display(rgb)[..., 1], np.round((rgb[1] - rgb.min()) / np.ptp(rgb) * 255))
    assert to_display(np.full((3, 2, 2), 7.0)).max() == 0       # flat: black, not a division by zero
    ready = np.array([[[3, 200]]], np.uint8)                    # uint8 is shown as it is
    assert to_display(ready)[0, 1].tolist() == [200] * 3
    with pytest.raises(ValueError, match="C = 1 or 3"):
        to_display(np.zeros((2, 4, 4)))


def test_overlay_tints_only_labelled_pixels():
    image = np.random.default_rng(2).random((3, 4, 4))
    mask = np.zeros((4, 4), int)
    mask[1, 1], mask[2, 2] = 3, 255
    plain = to_display(image)
    blended = overlay(image, mask, alpha=0.5)
    assert blended.shape == (4, 4, 3) and blended.dtype == np.uint8
    untouched = np.ones((4, 4), bool)
    untouched[1, 1] = False
    assert np.array_equal(blended[untouched], plain[untouched])          # background and ignore
    expected = np.round(0.5 * plain[1, 1].astype(float) + 0.5 * PALETTE[3])
    assert np.array_equal(blended[1, 1], expected)
    assert np.array_equal(overlay(image, mask, alpha=1.0)[1, 1], PALETTE[3])
    with pytest.raises(ValueError, match="mask must be"):
        overlay(image, np.zeros((3, 3), int))


def grid_inputs(count=3, size=16):
    rng = np.random.default_rng(3)
    images = rng.random((count, 3, size, size)).astype(np.float32)
    truths = rng.integers(0, 4, (count, size, size))
    return images, truths


def test_save_grid_size_and_cells(tmp_path):
    images, truths = grid_inputs()
    preds = {"U-Net": truths, "FCN": (truths + 1) % 4}
    path = save_grid(tmp_path / "grid.png", images, truths, preds, scale=2)
    with Image.open(path) as picture:
        grid = np.asarray(picture.convert("RGB"))
    columns, cell = 4, 32                                      # image | truth | U-Net | FCN, 16 * 2
    assert grid.shape == (TITLE_HEIGHT + 3 * cell + 4 * GAP, columns * cell + 5 * GAP, 3)
    # row 2, column 3 (FCN) holds the colours of its mask, enlarged twice
    top, left = TITLE_HEIGHT + GAP + 2 * (cell + GAP), GAP + 3 * (cell + GAP)
    want = colorize(preds["FCN"][2]).repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(grid[top:top + cell, left:left + cell], want)
    image_cell = grid[TITLE_HEIGHT + GAP:TITLE_HEIGHT + GAP + cell, GAP:GAP + cell]
    assert np.array_equal(image_cell, to_display(images[0]).repeat(2, axis=0).repeat(2, axis=1))
    assert (grid[:TITLE_HEIGHT] != BACKGROUND).any()            # the column titles are written


def test_save_grid_default_scale_legend_and_single_prediction(tmp_path):
    images, truths = grid_inputs(count=2, size=64)
    save_grid(tmp_path / "plain.png", images, truths, truths)
    save_grid(tmp_path / "legend.png", images, truths, truths, class_names=["bg", "a", "b", "c"])
    save_grid(tmp_path / "truth_only.png", images, truths)
    with Image.open(tmp_path / "plain.png") as plain, Image.open(tmp_path / "legend.png") as legend:
        assert plain.size == (3 * 128 + 4 * GAP, TITLE_HEIGHT + 2 * 128 + 3 * GAP)   # 64 px cells doubled
        assert legend.width == plain.width and legend.height > plain.height
        under = np.asarray(legend.convert("RGB"))[plain.height:].reshape(-1, 3)
        for colour in PALETTE[1:4]:                             # a swatch for each class
            assert (under == colour).all(axis=1).any()
    with Image.open(tmp_path / "truth_only.png") as truth_only:
        assert truth_only.width == 2 * 128 + 3 * GAP


def test_save_grid_checks_counts(tmp_path):
    images, truths = grid_inputs()
    with pytest.raises(ValueError, match="2 masks in 'FCN' for 3 images"):
        save_grid(tmp_path / "g.png", images, truths, {"FCN": truths[:2]})


def history_lists():
    return {"train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, None], "val_miou": [0.3, 0.6, 0.8]}


@pytest.mark.parametrize("as_records", [False, True])
def test_plot_history_writes_a_png(tmp_path, as_records):
    history = history_lists()
    if as_records:
        history = [dict(zip(history, values)) for values in zip(*history.values())]
    path = tmp_path / "history.png"
    assert plot_history(path, history) is True
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width > 300 and picture.height > 200
        assert len(np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)) > 10   # not blank


def test_plot_history_without_matplotlib_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert plot_history(tmp_path / "h.png", history_lists()) is False
    assert "matplotlib" in capsys.readouterr().out
    assert not (tmp_path / "h.png").exists()


def test_pictures_need_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"tinyseg\[images\]"):
        save_mask_png(tmp_path / "m.png", np.zeros((2, 2), int))
