"""Tests of reading real folders: every problem in one error, EXIF, TIFF, scaling, crops,
lazy reading, channel statistics and the degenerate folders that get a clear answer."""

import numpy as np
import pytest
from PIL import Image

from tinyseg.data import (IGNORE_INDEX, DataError, DataLoader, SegmentationDataset,
                          load_folder, normalize, read_image, read_mask)
from tinyseg.data.images import resize_image, resize_mask
from tinyseg.data.problems import SHOWN_PROBLEMS


def save(path, array, **options):
    """Write `array` (uint8/uint16/float32) with Pillow; the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, **options)
    return path


def noise(rng, height=6, width=7, channels=3):
    shape = (height, width, channels) if channels == 3 else (height, width)
    return rng.integers(0, 256, shape).astype(np.uint8)


def two_class_mask(height=6, width=7):
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 2] = 1
    return mask


def write_good_pairs(root, count=3, rng=None):
    rng = rng or np.random.default_rng(0)
    for i in range(count):
        save(root / "images" / f"good{i}.png", noise(rng))
        save(root / "masks" / f"good{i}.png", two_class_mask())


# ---------------------------------------------------------------- every problem, one error


def test_every_problem_of_a_folder_is_listed_in_one_error(tmp_path):
    rng = np.random.default_rng(1)
    write_good_pairs(tmp_path)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    (tmp_path / "images" / "garbage.png").write_bytes(rng.integers(0, 256, 300, np.uint8).tobytes())
    save(tmp_path / "masks" / "garbage.png", two_class_mask())
    for name, suffix in (("cutpng", ".png"), ("cutjpeg", ".jpg")):
        whole = save(tmp_path / f"{name}{suffix}", noise(rng, 64, 64)).read_bytes()
        (tmp_path / f"{name}{suffix}").unlink()
        (tmp_path / "images" / f"{name}{suffix}").write_bytes(whole[: len(whole) // 2])
        save(tmp_path / "masks" / f"{name}.png", two_class_mask())
    save(tmp_path / "images" / "lonely.png", noise(rng))
    save(tmp_path / "masks" / "orphan.png", two_class_mask())
    save(tmp_path / "images" / "wrongsize.png", noise(rng))
    save(tmp_path / "masks" / "wrongsize.png", two_class_mask(7, 6))
    save(tmp_path / "images" / "badlabel.png", noise(rng))
    save(tmp_path / "masks" / "badlabel.png", np.full((6, 7), 7, np.uint8))
    save(tmp_path / "images" / "jpegmask.png", noise(rng))
    save(tmp_path / "masks" / "jpegmask.jpg", two_class_mask())
    save(tmp_path / "images" / "rgbmask.png", noise(rng))
    save(tmp_path / "masks" / "rgbmask.png", noise(rng))

    with pytest.raises(DataError) as caught:
        load_folder(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"9 problems in {tmp_path}:\n")
    expected = {"images/garbage.png": "not an image Pillow can read",
                "images/cutpng.png": "cut short", "images/cutjpeg.jpg": "cut short",
                "images/lonely.png": "an image without a mask",
                "masks/orphan.png": "a mask without an image",
                "masks/wrongsize.png": "6x7 (width x height) but its image wrongsize.png is 7x6",
                "masks/badlabel.png": "holds the label 7, but there are 3 classes",
                "masks/jpegmask.jpg": "a JPEG", "masks/rgbmask.png": "a mask of 3 channels"}
    lines = message.splitlines()[1:]
    assert len(lines) == 9 and len(caught.value.problems) == 9
    for file, what in expected.items():
        assert any(line.startswith(f"  {tmp_path / file}: ") and what in line for line in lines), file
    assert isinstance(caught.value, ValueError)          # the CLI's one-line error path catches it


def test_more_than_twenty_problems_are_cut_with_a_count(tmp_path):
    write_good_pairs(tmp_path)
    for i in range(SHOWN_PROBLEMS + 5):
        save(tmp_path / "images" / f"lonely{i:02d}.png", np.zeros((6, 7, 3), np.uint8))
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{SHOWN_PROBLEMS + 5} problems in {tmp_path}:"
    assert len(lines) == 1 + SHOWN_PROBLEMS + 1 and lines[-1] == "  ... and 5 more"
    assert len(caught.value.problems) == SHOWN_PROBLEMS + 5      # the whole list is kept


def test_read_image_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(DataError, match=r"(?s)1 problem in .*nothing\.png: no such file"):
        read_image(tmp_path / "nothing.png")
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(DataError, match=r"text\.jpg: not an image Pillow can read"):
        read_image(tmp_path / "text.jpg")


def test_a_float_image_with_nan_is_a_problem(tmp_path):
    values = np.ones((4, 4), np.float32)
    values[1, 2] = np.nan
    with pytest.raises(DataError, match=r"a\.tif: holds NaN or infinite values"):
        read_image(save(tmp_path / "a.tif", values))


def test_instance_masks_with_labels_above_255_are_a_problem(tmp_path):
    write_good_pairs(tmp_path)
    instances = np.arange(42, dtype=np.uint16).reshape(6, 7) * 20               # up to 820
    save(tmp_path / "masks" / "good1.png", instances)
    with pytest.raises(DataError, match=r"good1\.png: holds the label 260.*instance mask"):
        load_folder(tmp_path)


# ---------------------------------------------------------------- reading as a viewer shows


def test_exif_orientation_turns_the_image_but_not_the_mask(tmp_path):
    stored = np.zeros((16, 24, 3), np.uint8)                 # 24 wide, 16 high
    stored[:, 12:] = 255                                     # right half white
    exif = Image.Exif()
    exif[0x0112] = 6                                         # "turn 90 degrees clockwise to view"
    save(tmp_path / "images" / "phone.jpg", stored, exif=exif)
    image = read_image(tmp_path / "images" / "phone.jpg")
    assert image.shape == (3, 24, 16)                        # upright: 16 wide, 24 high
    assert image[:, :10].max() < 0.1 and image[:, 14:].min() > 0.9   # right half is now the bottom
    mask_exif = Image.Exif()
    mask_exif[0x0112] = 6
    drawn = np.zeros((24, 16), np.uint8)
    drawn[12:] = 1                                           # drawn on the photo as viewed
    save(tmp_path / "masks" / "phone.png", drawn, exif=mask_exif)
    assert np.array_equal(read_mask(tmp_path / "masks" / "phone.png"), drawn)    # as stored
    data = load_folder(tmp_path, split=False)
    image, mask = data[0]
    assert image.shape == (3, 24, 16) and np.array_equal(mask, drawn)


def test_tiff_images_of_every_depth(tmp_path):
    rng = np.random.default_rng(3)
    deep = rng.integers(900, 1400, (5, 6)).astype(np.uint16)       # a dim 16-bit microscope image
    np.testing.assert_allclose(read_image(save(tmp_path / "deep.tif", deep)), deep[None] / 65535.0,
                               rtol=1e-6)
    values = rng.normal(-3.0, 10.0, (5, 6)).astype(np.float32)
    assert np.array_equal(read_image(save(tmp_path / "float.tif", values)), values[None])
    grey = noise(rng, 5, 6, channels=1)
    np.testing.assert_allclose(read_image(save(tmp_path / "grey.tiff", grey)), grey[None] / 255.0,
                               atol=1e-7)
    colour = noise(rng, 5, 6)
    np.testing.assert_allclose(read_image(save(tmp_path / "rgb.tif", colour)),
                               colour.transpose(2, 0, 1) / 255.0, atol=1e-7)
    wide = rng.integers(0, 70000, (5, 6)).astype(np.int32)         # Pillow mode "I"
    np.testing.assert_allclose(read_image(save(tmp_path / "int.tif", wide)), wide[None] / 65535.0,
                               rtol=1e-6)


def test_a_folder_of_tiffs_with_tiff_masks(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(3):
        save(tmp_path / "images" / f"cell{i}.tif", rng.integers(0, 4000, (6, 7)).astype(np.uint16))
        save(tmp_path / "masks" / f"cell{i}.tif", two_class_mask())
    train, val = load_folder(tmp_path, val_count=1)
    assert (len(train), len(val), train.in_channels, train.num_classes) == (2, 1, 1, 2)


# ---------------------------------------------------------------- scaling on load


def bilinear_loop(image, height, width):
    """Direct float64 reference: each output centre mapped back, four neighbours mixed."""
    channels, h_in, w_in = image.shape
    out = np.zeros((channels, height, width))
    for i in range(height):
        for j in range(width):
            y = min(max((i + 0.5) * h_in / height - 0.5, 0), h_in - 1)
            x = min(max((j + 0.5) * w_in / width - 0.5, 0), w_in - 1)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, h_in - 1), min(x0 + 1, w_in - 1)
            fy, fx = y - y0, x - x0
            out[:, i, j] = ((1 - fy) * (1 - fx) * image[:, y0, x0] + (1 - fy) * fx * image[:, y0, x1]
                            + fy * (1 - fx) * image[:, y1, x0] + fy * fx * image[:, y1, x1])
    return out


@pytest.mark.parametrize("size", [(3, 5), (11, 13), (7, 4)])
def test_resize_image_is_bilinear(size):
    image = np.random.default_rng(5).random((2, 7, 9)).astype(np.float32)
    resized = resize_image(image, size)
    assert resized.dtype == np.float32 and resized.shape == (2, *size)
    np.testing.assert_allclose(resized, bilinear_loop(image.astype(np.float64), *size), atol=1e-6)


def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(6).random((3, 10, 12)).astype(np.float32)
    mask = np.random.default_rng(7).integers(0, 5, (10, 12))
    for size in ((5, 6), (23, 17)):
        want = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=size,
                                               mode="bilinear", align_corners=False)[0].numpy()
        np.testing.assert_allclose(resize_image(image, size), want, atol=1e-5)
        want_mask = torch.nn.functional.interpolate(torch.from_numpy(mask)[None, None].double(),
                                                    size=size, mode="nearest-exact")[0, 0].numpy()
        assert np.array_equal(resize_mask(mask, size), want_mask.astype(np.int64))


def test_folder_scale_resizes_images_bilinear_and_masks_nearest(tmp_path):
    rng = np.random.default_rng(8)
    save(tmp_path / "images" / "a.png", noise(rng, 10, 14))
    mask = rng.choice(np.array([0, 2, IGNORE_INDEX], np.uint8), (10, 14))
    save(tmp_path / "masks" / "a.png", mask)
    save(tmp_path / "images" / "b.png", noise(rng, 9, 9))
    save(tmp_path / "masks" / "b.png", two_class_mask(9, 9))
    data = load_folder(tmp_path, scale=0.5, split=False)
    image, small_mask = data[0]
    assert image.shape == (3, 5, 7) and small_mask.shape == (5, 7)
    full = read_image(tmp_path / "images" / "a.png")
    np.testing.assert_allclose(image, resize_image(full, (5, 7)), atol=1e-6)
    assert set(np.unique(small_mask)) <= {0, 2, IGNORE_INDEX}      # no label invented by mixing
    assert data[1][0].shape == (3, 5, 5)                            # 4.5 rounds up
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be finite and > 0"):
            load_folder(tmp_path, scale=bad)


# ---------------------------------------------------------------- reading when asked


def test_folder_datasets_read_their_files_when_an_example_is_asked_for(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    write_good_pairs(tmp_path, count=4, rng=rng)
    train, val = load_folder(tmp_path, val_count=1)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(str(path)) or
                        real_open(path, *a, **k))
    first_image, first_mask = train.paths[0]
    replacement = noise(rng)
    save(first_image, replacement)                          # changed after the check pass
    image, _ = train[0]
    np.testing.assert_allclose(image, replacement.transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert opened == [str(first_image), str(first_mask)]     # example 0's two files, nothing else
    held = sum(array.nbytes for record in train.records
               for array in (record.labels, record.counts, *record.moments[1:]))
    assert held < len(train) * replacement.nbytes * 4       # less than the images as float32


# ---------------------------------------------------------------- statistics from the scan


def test_channel_stats_are_the_mean_and_std_of_every_training_pixel(tmp_path):
    rng = np.random.default_rng(10)
    save(tmp_path / "images" / "grey.png", noise(rng, 5, 8, channels=1))
    save(tmp_path / "images" / "big.png", noise(rng, 9, 4))
    save(tmp_path / "images" / "small.png", noise(rng, 3, 3))
    for name, shape in (("grey", (5, 8)), ("big", (9, 4)), ("small", (3, 3))):
        save(tmp_path / "masks" / f"{name}.png", two_class_mask(*shape))
    data = load_folder(tmp_path, split=False)
    pixels = np.concatenate([data[i][0].reshape(3, -1) for i in range(len(data))], axis=1)
    mean, std = data.channel_stats()
    assert mean.dtype == np.float64 and mean.shape == (3,) and std.shape == (3,)
    np.testing.assert_allclose(mean, pixels.astype(np.float64).mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(std, pixels.astype(np.float64).std(axis=1), rtol=1e-10)
    served = np.concatenate([data[i][1].ravel() for i in range(len(data))])
    assert np.array_equal(data.class_pixel_counts(), np.bincount(served, minlength=2))
    train, _ = load_folder(tmp_path, val_count=1, scale=0.7)
    scaled = np.concatenate([train[i][0].reshape(3, -1) for i in range(len(train))], axis=1)
    np.testing.assert_allclose(train.channel_stats()[1], scaled.std(axis=1), rtol=1e-6)


def test_in_memory_dataset_has_the_same_channel_stats():
    images = [np.random.default_rng(i).random((2, 4 + i, 5)).astype(np.float32) for i in range(3)]
    masks = [np.zeros((4 + i, 5)) for i in range(3)]
    mean, std = SegmentationDataset(images, masks, ["a"]).channel_stats()
    pixels = np.concatenate([image.reshape(2, -1) for image in images], axis=1).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(std, pixels.std(axis=1), rtol=1e-10)


def test_normalize_centres_and_scales_each_channel():
    images = np.random.default_rng(11).random((2, 3, 4, 5)).astype(np.float32)
    mean, std = np.array([0.1, 0.5, 0.9]), np.array([2.0, 0.5, 0.0])
    out = normalize(images, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], (images[:, 0] - 0.1) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], (images[:, 1] - 0.5) / 0.5, rtol=1e-6)
    assert np.isfinite(out[:, 2]).all()                       # a constant channel: no division by 0
    np.testing.assert_allclose(normalize(images[0], mean, std), out[0])
    with pytest.raises(ValueError, match=r"mean \(2,\)"):
        normalize(images, mean[:2], std)


# ---------------------------------------------------------------- degenerate folders


def test_binary_masks_saved_as_0_and_255_get_advice(tmp_path):
    rng = np.random.default_rng(12)
    for i in range(3):
        save(tmp_path / "images" / f"a{i}.png", noise(rng))
        save(tmp_path / "masks" / f"a{i}.png", two_class_mask() * 255)
    for options in ({}, {"classes": 2}, {"split": False, "classes": 2}):
        with pytest.raises(DataError, match=r"only 0 and 255.*binary masks saved as 0/255.*"
                                             r"mask = \(mask > 0\)\.astype\(np\.uint8\)"):
            load_folder(tmp_path, **options)


def test_a_single_class_cannot_be_trained_on_but_can_be_scored(tmp_path):
    rng = np.random.default_rng(13)
    for i in range(3):
        save(tmp_path / "images" / f"a{i}.png", noise(rng))
        save(tmp_path / "masks" / f"a{i}.png", np.full((6, 7), 2, np.uint8))
    with pytest.raises(DataError, match="only the class 2.*at least two"):
        load_folder(tmp_path)
    assert len(load_folder(tmp_path, classes=4, split=False)) == 3   # eval: lacking classes is fine


def test_a_pool_of_one_image_cannot_be_split(tmp_path):
    write_good_pairs(tmp_path, count=1)
    with pytest.raises(DataError, match="1 image/mask pair.*too few.*train/ and val/"):
        load_folder(tmp_path)
    assert len(load_folder(tmp_path, split=False)) == 1


def test_val_count(tmp_path):
    write_good_pairs(tmp_path, count=5)
    train, val = load_folder(tmp_path, val_count=2, seed=3)
    assert (len(train), len(val)) == (3, 2)
    assert set(train.paths).isdisjoint(val.paths)
    with pytest.raises(ValueError, match="val_count must be a whole number >= 1.*at least 1 image"):
        load_folder(tmp_path, val_count=0)
    with pytest.raises(DataError, match="5 image/mask pair.*set aside 5"):
        load_folder(tmp_path, val_count=5)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        load_folder(tmp_path, val_fraction=0)


def test_split_false_gives_every_pair_of_either_layout(tmp_path):
    write_good_pairs(tmp_path / "pool", count=5)
    assert len(load_folder(tmp_path / "pool", split=False)) == 5
    write_good_pairs(tmp_path / "made" / "train", count=3)
    write_good_pairs(tmp_path / "made" / "val", count=2)
    every = load_folder(tmp_path / "made", split=False, classes=["bg", "fg", "other"])
    assert len(every) == 5 and every.class_names == ["bg", "fg", "other"]
    assert {image.parent.parent.name for image, _ in every.paths} == {"train", "val"}


def test_masks_all_ignore_for_some_images_are_fine(tmp_path):
    write_good_pairs(tmp_path, count=4)
    save(tmp_path / "masks" / "good2.png", np.full((6, 7), IGNORE_INDEX, np.uint8))
    data = load_folder(tmp_path, split=False)
    assert len(data) == 4 and data.num_classes == 2
    assert data.notes and "1 mask(s) are all 255" in data.notes[0] and "good2.png" in data.notes[0]
    train, val = load_folder(tmp_path, val_count=1)
    assert len(train) + len(val) == 4


# ---------------------------------------------------------------- random crops


def test_crops_cut_image_and_mask_at_the_same_seeded_place():
    rng = np.random.default_rng(14)
    images = rng.random((6, 2, 9, 11)).astype(np.float32)
    masks = np.floor(images[:, 0] * 4).astype(np.int64)       # label = which quarter image[0] is in
    data = SegmentationDataset(images, masks, list("abcd"))
    loader = DataLoader(data, batch_size=3, seed=2, augment=True, crop=(4, 5))
    epochs = [list(loader) for _ in range(2)]
    corners = set()
    for batches in epochs:
        for batch_images, batch_masks in batches:
            assert batch_images.shape == (3, 2, 4, 5) and batch_masks.shape == (3, 4, 5)
            assert np.array_equal(batch_masks, np.floor(batch_images[:, 0] * 4))
            for image in batch_images:
                corners.add(float(image.sum()))
    assert len(corners) > 6                                    # crops differ by example and epoch
    resumed = DataLoader(data, batch_size=3, seed=2, augment=True, crop=(4, 5))
    resumed.set_epoch(1)                                       # as a resumed run does
    for (a, b), (want_a, want_b) in zip(resumed, epochs[1]):
        assert np.array_equal(a, want_a) and np.array_equal(b, want_b)


def test_crops_leave_the_order_and_flips_of_a_loader_without_them():
    data = SegmentationDataset(np.zeros((7, 1, 3, 3)), np.zeros((7, 3, 3)), ["a"])
    plain = DataLoader(data, seed=5, augment=True).epoch_plan(3)
    cropped = DataLoader(data, seed=5, augment=True, crop=(2, 2)).epoch_plan(3)
    assert np.array_equal(plain[0], cropped[0]) and np.array_equal(plain[1], cropped[1])
    assert plain[2] is None and cropped[2].shape == (7, 2)


def test_an_image_smaller_than_the_crop_is_padded():
    image = np.ones((1, 2, 6), np.float32)
    data = SegmentationDataset([image], [np.ones((2, 6))], ["a", "b"])
    images, masks = next(iter(DataLoader(data, batch_size=1, crop=(4, 3))))
    assert images.shape == (1, 1, 4, 3)
    assert (images[0, 0, :2] == 1).all() and (images[0, 0, 2:] == 0).all()
    assert (masks[0, :2] == 1).all() and (masks[0, 2:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="crop must be two positive integers"):
        DataLoader(data, crop=(0, 3))


def test_a_stack_of_pictures_in_one_tiff_is_a_problem(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), value, np.uint8)) for value in (10, 20, 30)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=r"stack\.tif: a stack of 3 pictures"):
        read_image(tmp_path / "stack.tif")


def test_an_empty_list_of_classes_is_refused(tmp_path):
    write_good_pairs(tmp_path)
    with pytest.raises(ValueError, match="classes is an empty list"):
        load_folder(tmp_path, classes=[])
    (tmp_path / "classes.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"classes\.txt: names no class"):
        load_folder(tmp_path)


# ---------------------------------------------------------------- Pascal VOC as it ships


def write_voc(root, train_ids, val_ids, missing=()):
    """A small VOC2012 folder: JPEG photos, palette PNG masks (255 borders), the two id lists."""
    from tinyseg.data.voc import voc_palette
    rng = np.random.default_rng(20)
    for name in train_ids + val_ids:
        if name not in missing:
            save(root / "JPEGImages" / f"{name}.jpg", noise(rng, 8, 9))
            labels = np.zeros((8, 9), np.uint8)
            labels[2:6, 2:6], labels[1, 1:7] = 15, IGNORE_INDEX                 # a person, a border
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette(voc_palette().ravel().tolist())
            (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            mask.save(root / "SegmentationClass" / f"{name}.png")
    save(root / "JPEGImages" / "2007_999999.jpg", noise(rng, 8, 9))              # a photo without a mask
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(train_ids) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(val_ids) + "\n")


def test_the_pascal_voc_layout_is_read_as_it_ships(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    write_voc(root, ["2007_000032", "2007_000039"], ["2007_000033"])
    train, val = load_folder(root)
    assert (len(train), len(val), train.num_classes, train.in_channels) == (2, 1, 21, 3)
    assert train.class_names[:3] == ["background", "aeroplane", "bicycle"]
    assert train.class_names[15] == "person"
    assert [image.stem for image, _ in val.paths] == ["2007_000033"]
    assert set(np.unique(train[0][1])) == {0, 15, IGNORE_INDEX}                # the palette's indices
    every = load_folder(root, split=False)
    assert len(every) == 3
    (root / "classes.txt").write_text("bg\n" + "\n".join(f"c{i}" for i in range(1, 16)) + "\n")
    assert load_folder(root, split=False).class_names[15] == "c15"
    with pytest.raises(DataError, match=r"VOCdevkit: holds neither .* \(.*VOC2012 below has the Pascal VOC"):
        load_folder(tmp_path / "VOCdevkit")


def test_a_listed_voc_id_without_its_files_is_a_problem(tmp_path):
    write_voc(tmp_path, ["a", "b"], ["c"], missing=("b",))
    (tmp_path / "SegmentationClass" / "c.png").unlink()
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path)
    lists = tmp_path / "ImageSets" / "Segmentation"
    assert caught.value.problems == [
        (str(lists / "train.txt"), f"line 2 lists 'b', but {tmp_path / 'JPEGImages' / 'b.jpg'} and "
                                   f"{tmp_path / 'SegmentationClass' / 'b.png'} are missing"),
        (str(lists / "val.txt"), f"line 1 lists 'c', but {tmp_path / 'SegmentationClass' / 'c.png'} "
                                 "is missing")]
    (lists / "val.txt").unlink()
    with pytest.raises(DataError, match=r"val\.txt: this list of ids is missing"):
        load_folder(tmp_path)


# ---------------------------------------------------------------- what --scale destroys


def test_a_scale_that_loses_classes_is_blamed_not_the_masks(tmp_path):
    rng = np.random.default_rng(21)
    for i in range(3):
        save(tmp_path / "images" / f"a{i}.png", noise(rng, 40, 60))
        mask = np.zeros((40, 60), np.uint8)
        mask[:12, :12] = 1                                     # 6% of the picture, gone at 1x1
        save(tmp_path / "masks" / f"a{i}.png", mask)
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path, scale=0.001)
    message = str(caught.value)
    assert "--scale 0.001 shrinks the masks so far that the class(es) 1 vanish" in message
    assert "use a larger --scale, e.g. 0.8" in message and "only the class" not in message
    assert len(load_folder(tmp_path, scale=0.5, split=False)) == 3


def test_a_scale_that_leaves_a_few_pixels_is_a_problem(tmp_path):
    rng = np.random.default_rng(22)
    for i in range(4):
        save(tmp_path / "images" / f"a{i}.png", noise(rng, 50, 70))
        save(tmp_path / "masks" / f"a{i}.png", np.full((50, 70), i % 2, np.uint8))   # whole-mask classes
    with pytest.raises(DataError, match=r"--scale 0.02 shrinks .*a0\.png to 1x1 pixels \(from 70x50\), "
                                         r"too small to learn from: use a larger --scale, e.g. 0.64"):
        load_folder(tmp_path, scale=0.02)


# ---------------------------------------------------------------- progress and the time budget


def test_the_check_stops_at_the_deadline(tmp_path):
    import time
    from tinyseg.data import OutOfTime
    write_good_pairs(tmp_path, count=3)
    with pytest.raises(OutOfTime, match=r"^the time budget ran out while checking the data \(0 of 3 "
                                        r"pairs read\): raise --time-budget$") as caught:
        load_folder(tmp_path, deadline=time.perf_counter() - 1)
    assert isinstance(caught.value, ValueError) and (caught.value.done, caught.value.total) == (0, 3)
    assert len(load_folder(tmp_path, split=False, deadline=time.perf_counter() + 60)) == 3


def test_the_check_shows_progress_only_when_asked_and_slow(tmp_path, monkeypatch):
    import sys
    import tinyseg.data.scan as scan
    write_good_pairs(tmp_path, count=3)
    bars = []
    monkeypatch.setattr(scan, "progress", lambda items, total, what, enabled, delay:
                        bars.append((total, what, enabled, delay)) or items)
    load_folder(tmp_path, split=False, progress=True)
    load_folder(tmp_path, split=False)
    assert bars == [(3, "checking the data", True, scan.PROGRESS_DELAY),
                    (3, "checking the data", False, scan.PROGRESS_DELAY)]
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "tqdm", None)                            # tqdm not installed
    assert len(load_folder(tmp_path, split=False, progress=True)) == 3


# ---------------------------------------------------------------- file names


def test_awkward_file_names_are_read_and_named_in_messages(tmp_path):
    import os
    rng = np.random.default_rng(23)
    names = ["with space", "été", "日本", os.fsdecode(b"bad\xff")]
    for name in names:
        save(tmp_path / "images" / f"{name}.png", noise(rng))
        save(tmp_path / "masks" / f"{name}.png", two_class_mask())
    assert len(load_folder(tmp_path, split=False)) == 4
    (tmp_path / "images" / f"{names[3]}.png").write_bytes(b"not a picture")
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path)
    assert caught.value.problems[0][0] == str(tmp_path / "images" / f"{names[3]}.png")
    assert isinstance(str(caught.value), str)
