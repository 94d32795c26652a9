"""Augmentation: the same geometry for image and mask, ignore kept, seeded, and the picture."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg.data import SegmentationDataset
from tinyseg.commands.augment import add_arguments, run
from tinyseg.data.augment import (POLICIES, Augmentation, apply_augmentation, as_policy, augment_pair,
                                  augmentation_grid, brightness_contrast, draw_augmentation,
                                  example_rng, random_scale_crop_pair, rotate90_pair)

IGNORE = 255


def blocks(height: int, width: int, seed: int):
    """A mask of 3x3-pixel blocks of labels 0..3 (some 255), and an image that IS the mask.

    image channel 0 = the label, channel 1 = a second copy: wherever a change
    moves pixels, the image and the mask must still agree.
    """
    rng = np.random.default_rng(seed)
    small = rng.choice([0, 1, 2, 3, IGNORE], size=(-(-height // 3), -(-width // 3)), p=[.3, .2, .2, .2, .1])
    mask = small.repeat(3, axis=0).repeat(3, axis=1)[:height, :width].astype(np.int64)
    return np.stack([mask, mask]).astype(np.float32), mask


def agree_where_image_is_locally_constant(image, mask):
    """Where the bilinear image is flat over a 3x3 neighbourhood, its value is the mask's label."""
    values = image[0]
    padded = np.pad(values, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))     # (H, W, 3, 3)
    flat = windows.max(axis=(2, 3)) - windows.min(axis=(2, 3)) < 1e-6
    inside = mask != IGNORE
    np.testing.assert_array_equal(np.round(values[flat & inside]), mask[flat & inside])


sizes = st.integers(6, 14)


@settings(max_examples=30)
@given(height=sizes, width=sizes, seed=st.integers(0, 10**6), policy=st.sampled_from(POLICIES))
def test_image_and_mask_move_together_and_labels_stay_labels(height, width, seed, policy):
    image, mask = blocks(height, width, seed)
    out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), policy)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape    # size never changes
    assert out_image.dtype == np.float32 and out_mask.dtype == np.int64
    assert set(np.unique(out_mask)) <= set(np.unique(mask)) | {IGNORE}       # no invented labels
    geometry = draw_augmentation(np.random.default_rng(seed), policy)
    geometry_only = Augmentation(geometry.horizontal, geometry.vertical, geometry.quarter_turns,
                                 geometry.scale, geometry.corner)
    moved_image, moved_mask = apply_augmentation(image, mask, geometry_only)
    np.testing.assert_array_equal(moved_mask, out_mask)                    # colour leaves the mask alone
    agree_where_image_is_locally_constant(moved_image, moved_mask)


def test_flips_and_turns_move_image_and_mask_exactly_alike():
    image, mask = blocks(6, 6, 0)
    for k in range(4):
        turned_image, turned_mask = rotate90_pair(image, mask, k)
        np.testing.assert_array_equal(turned_image[0], turned_mask)
    turned_image, turned_mask = rotate90_pair(np.arange(6.0).reshape(1, 2, 3), np.arange(6).reshape(2, 3), 1)
    assert turned_mask.tolist() == [[2, 5], [1, 4], [0, 3]]                 # counter-clockwise
    np.testing.assert_array_equal(turned_image[0], turned_mask)


def test_non_square_images_turn_only_by_half_turns():
    image, mask = blocks(4, 6, 1)
    for k in range(4):
        out_image, out_mask = apply_augmentation(image, mask, Augmentation(quarter_turns=k))
        expected = mask if k % 2 == 0 else mask[::-1, ::-1]
        np.testing.assert_array_equal(out_mask, expected)
        np.testing.assert_array_equal(out_image[0], expected)


def test_scale_one_is_the_identity_and_shrinking_pads_with_ignore():
    image, mask = blocks(8, 8, 2)
    same_image, same_mask = random_scale_crop_pair(image, mask, 1.0, (0.3, 0.9))
    np.testing.assert_array_equal(same_mask, mask)
    np.testing.assert_array_equal(same_image, image)
    small_image, small_mask = random_scale_crop_pair(image, mask, 0.5, (0.5, 0.5))
    assert (small_mask[4:] == IGNORE).all() and (small_mask[:, 4:] == IGNORE).all()
    assert not small_image[:, 4:].any() and not small_image[:, :, 4:].any()
    np.testing.assert_array_equal(small_mask[:4, :4], mask[1::2, 1::2])        # nearest: centres 1, 3, 5, 7


def test_zooming_in_by_two_repeats_each_label_in_two_by_two_blocks():
    mask = np.arange(16).reshape(4, 4)
    image = mask[None].astype(np.float32)
    _, big_mask = random_scale_crop_pair(image, mask, 2.0, (0.0, 0.0))       # top-left window
    np.testing.assert_array_equal(big_mask, mask[:2, :2].repeat(2, axis=0).repeat(2, axis=1))


def test_brightness_and_contrast_follow_the_formula():
    image = np.array([[[0.0, 0.5], [1.0, 0.5]]], dtype=np.float32)         # mean 0.5, range 1
    out = brightness_contrast(image, brightness=0.1, contrast=2.0)
    np.testing.assert_allclose(out, 0.5 + 2.0 * (image - 0.5) + 0.1, rtol=1e-6)
    assert out.dtype == np.float32


@pytest.mark.parametrize("policy", POLICIES)
def test_the_same_seed_gives_the_same_augmentation_and_inputs_are_not_modified(policy):
    image, mask = blocks(8, 8, 3)
    image_copy, mask_copy = image.copy(), mask.copy()
    first = augment_pair(image, mask, example_rng(7, 2, 5), policy)
    second = augment_pair(image, mask, example_rng(7, 2, 5), policy)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(mask, mask_copy)


def test_other_epochs_and_examples_are_augmented_differently():
    drawn = {draw_augmentation(example_rng(0, epoch, index), "standard")
             for epoch in range(3) for index in range(3)}
    assert len(drawn) == 9


def test_policies_draw_what_they_say():
    rng = np.random.default_rng(0)
    assert draw_augmentation(rng, "none") == Augmentation()
    flips = [draw_augmentation(rng, "flip") for _ in range(50)]
    assert all((a.quarter_turns, a.scale, a.contrast, a.brightness) == (0, 1.0, 1.0, 0.0) for a in flips)
    assert {a.horizontal for a in flips} == {a.vertical for a in flips} == {False, True}
    standard = [draw_augmentation(rng, "standard") for _ in range(400)]
    assert {a.quarter_turns for a in standard} == {0, 1, 2, 3}
    assert all(0.75 <= a.scale <= 1.25 and 0.8 <= a.contrast <= 1.2 and -0.1 <= a.brightness <= 0.1
               for a in standard)
    # each of the three changes is on for about half the examples, independently of the others
    turned = np.array([a.quarter_turns != 0 for a in standard])
    scaled = np.array([a.scale != 1.0 for a in standard])
    coloured = np.array([(a.contrast, a.brightness) != (1.0, 0.0) for a in standard])
    for applied in (turned, scaled, coloured):
        assert 0.4 < applied.mean() < 0.6
    assert 0.05 < (~turned & ~scaled & ~coloured).mean() < 0.2              # 1/8 see none of them
    with pytest.raises(ValueError, match="--augment must be one of none, flip, standard, got 'heavy'"):
        draw_augmentation(rng, "heavy")


def tiny_dataset():
    pairs = [blocks(8, 8, seed) for seed in range(3)]
    return SegmentationDataset([p[0][:1] / 3 for p in pairs], [p[1] for p in pairs], ["bg", "a", "b", "c"])


def test_augmentation_grid_draws_one_row_per_example(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = augmentation_grid(tiny_dataset(), tmp_path / "aug.png", "standard", seed=0, count=2, epochs=2)
    picture = Image.open(path)
    cell, gap = 96, 4                                   # 8 pixels enlarged 12 times
    assert picture.width == 6 * cell + 7 * gap           # image, mask, then 2 epochs x (image, mask)
    assert picture.height > 2 * cell


def test_augment_command_writes_the_picture(tmp_path, capsys):
    pytest.importorskip("PIL.Image")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "aug.png"
    args = parser.parse_args(["--out", str(out), "--count", "2", "--size", "16", "--epochs", "1"])
    assert run(args) == 0
    assert out.exists() and str(out) in capsys.readouterr().out
    with pytest.raises(ValueError, match="--count must be >= 1, got 0"):
        run(parser.parse_args(["--count", "0"]))


def test_pictures_share_the_originals_display_range_so_brightness_shows():
    from tinyseg.data.augment import as_uint8
    image = np.array([[[0.0, 0.5, 1.0]]])
    assert as_uint8(image, 0.0, 1.0).tolist() == [[[0, 128, 255]]]
    assert as_uint8(image + 0.2, 0.0, 1.0).tolist() == [[[51, 178, 255]]]   # brighter, clipped at white


@pytest.mark.parametrize("policy", POLICIES)
def test_the_loader_adds_nothing_to_augment_pair_but_its_plan(policy):
    """A batch is each example cropped, then augment_pair'd with the epoch plan's flips."""
    from tinyseg.data import DataLoader, crop_pair
    data = tiny_dataset()
    loader = DataLoader(data, batch_size=3, seed=4, augment=policy, crop=(6, 7))
    loader.set_epoch(2)
    order, flips, corners = loader.epoch_plan(2)
    images, masks = next(iter(loader))
    for served, index in enumerate(order):
        image, mask = crop_pair(*data[index], (6, 7), corners[index])
        image, mask = augment_pair(image, mask, example_rng(4, 2, index), policy, flips=flips[index])
        np.testing.assert_array_equal(images[served], image)
        np.testing.assert_array_equal(masks[served], mask)


def test_true_and_false_still_mean_flip_and_none_and_other_names_are_refused():
    assert (as_policy(True), as_policy(False), as_policy("standard")) == ("flip", "none", "standard")
    with pytest.raises(ValueError, match=r"augment must be 'none', 'flip' or 'standard' \(or True/False\), "
                                         r"got 'heavy'"):
        as_policy("heavy")
