"""Tests of tinyseg.data: the shapes data, the folder reader and the DataLoader."""

import sys
import time

import numpy as np
import pytest
from PIL import Image

from tinyseg.data import (IGNORE_INDEX, SHAPE_KINDS, DataLoader, SegmentationDataset, collate,
                          load_folder, make_shapes, shapes_dataset)
from tinyseg.data.shapes import (bilinear_matrix, contrasting_colour, draw_outline, inside_shape,
                                 least_hidden_outline)

# ---------------------------------------------------------------- shapes


def stacked(dataset):
    return np.stack(dataset.images), np.stack(dataset.masks)


def test_shapes_same_seed_gives_identical_arrays():
    images_a, masks_a = stacked(make_shapes(20, seed=3))
    images_b, masks_b = stacked(make_shapes(20, seed=3))
    assert np.array_equal(images_a, images_b)
    assert np.array_equal(masks_a, masks_b)


def test_shapes_different_seed_gives_different_arrays():
    images_a, masks_a = stacked(make_shapes(20, seed=3))
    images_b, masks_b = stacked(make_shapes(20, seed=4))
    assert not np.array_equal(images_a, images_b)
    assert not np.array_equal(masks_a, masks_b)


def test_shapes_more_images_keep_the_first_ones():
    few_images, few_masks = stacked(make_shapes(5, seed=1))
    many_images, many_masks = stacked(make_shapes(130, seed=1))      # spans three chunks
    assert np.array_equal(few_images, many_images[:5])
    assert np.array_equal(few_masks, many_masks[:5])


def test_shapes_train_and_val_splits_differ():
    train = shapes_dataset("train", count=10)
    val = shapes_dataset("val", count=10)
    assert len(train) == 10 and len(val) == 10
    assert not np.array_equal(stacked(train)[0], stacked(val)[0])
    with pytest.raises(ValueError, match="split"):
        shapes_dataset("test")


def test_shapes_dtypes_shapes_and_value_ranges():
    data = make_shapes(16, size=48)
    images, masks = stacked(data)
    assert images.dtype == np.float32 and images.shape == (16, 3, 48, 48)
    assert masks.dtype == np.int64 and masks.shape == (16, 48, 48)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(np.unique(masks)) <= {0, 1, 2, 3}
    assert data.class_names == ["background", "disc", "square", "triangle"]
    assert data.num_classes == 4 and data.in_channels == 3
    image, mask = data[3]
    assert image.shape == (3, 48, 48) and mask.shape == (48, 48)


def test_shapes_every_class_present_and_roughly_balanced():
    counts = make_shapes(200).class_pixel_counts()
    assert (counts > 0).all()
    shape_counts = counts[1:]
    assert shape_counts.max() < 1.5 * shape_counts.min()     # equal areas, kinds drawn uniformly
    assert counts[0] > shape_counts.max()                    # background is the largest class


def test_shapes_more_classes_use_more_kinds():
    data = make_shapes(100, num_classes=6)
    assert data.class_names == ["background", *SHAPE_KINDS]
    assert (data.class_pixel_counts() > 0).all()
    for bad in (1, 7):
        with pytest.raises(ValueError, match="num_classes"):
            make_shapes(2, num_classes=bad)


def test_shapes_colour_does_not_tell_the_class():
    """Every kind of shape gets its colours from the same distribution."""
    images, masks = stacked(make_shapes(300))
    pixels = images.transpose(0, 2, 3, 1)                                # (N, H, W, 3)
    means = np.array([pixels[masks == c].mean(axis=0) for c in (1, 2, 3)])   # (3 kinds, RGB)
    assert np.abs(means - means.mean(axis=0)).max() < 0.05


def test_shapes_shape_count_and_radius_options():
    one = make_shapes(30, shapes_per_image=(1, 1), radius=(8, 8))
    areas = [(mask > 0).sum() for mask in one.masks]
    assert np.allclose(areas, np.pi * 8 ** 2, rtol=0.2)     # one shape of the area of a disc r=8
    with pytest.raises(ValueError, match="shapes_per_image"):
        make_shapes(2, shapes_per_image=(3, 2))


def test_shapes_stand_upright_unless_rotated():
    """An upright square fills its bounding box; a turned one mostly does not."""
    def box_fill(mask):
        rows, cols = np.nonzero(mask)
        return mask.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    options = dict(num_classes=3, shapes_per_image=(1, 1), radius=(10, 12))
    upright = [m for m in make_shapes(40, **options).masks if m.max() == 2]     # the squares
    turned = [m for m in make_shapes(40, rotate=True, **options).masks if m.max() == 2]
    assert upright and turned
    assert all(box_fill(m > 0) == 1.0 for m in upright)
    assert np.mean([box_fill(m > 0) for m in turned]) < 0.85


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_every_kind_covers_the_area_of_its_nominal_disc(kind):
    """Equal areas: size gives no hint of the kind. Drawn at r = 12 on a fine grid, any turn."""
    y, x = np.mgrid[-40:40:0.1, -40:40:0.1] + 0.05                  # cell centres
    for turn in (0.0, 0.7):
        u, v = x * np.cos(turn) + y * np.sin(turn), y * np.cos(turn) - x * np.sin(turn)
        area = inside_shape(kind, u, v, 12.0).sum() * 0.1 ** 2
        assert area == pytest.approx(np.pi * 12 ** 2, rel=0.02)


def test_each_shape_is_placed_where_it_hides_least():
    rng_state = np.random.default_rng(9).bit_generator.state
    kind = np.array([0, 1, 2, 0, 1])
    covered = np.zeros((5, 32, 32), bool)
    covered[:, :, :16] = True                                  # earlier shapes fill the left half
    rng = np.random.default_rng(9)
    chosen = least_hidden_outline(rng, kind, SHAPE_KINDS[:3], 32, (4, 6), False, covered, tries=3)
    replay = np.random.default_rng(9)
    replay.bit_generator.state = rng_state
    tries = [draw_outline(replay, kind, SHAPE_KINDS[:3], 32, (4, 6), False) for _ in range(3)]
    hidden = np.array([(t & covered).sum(axis=(1, 2)) for t in tries])      # (tries, 5)
    assert np.array_equal((chosen & covered).sum(axis=(1, 2)), hidden.min(axis=0))
    assert (hidden.min(axis=0) < hidden.max(axis=0)).any()     # the choice mattered somewhere


def test_shape_colours_stand_out_from_what_they_cover():
    rng = np.random.default_rng(4)
    images = np.full((200, 3, 8, 8), 0.5, np.float32)
    inside = np.zeros((200, 8, 8), bool)
    inside[:, 2:6, 2:6] = True
    colours = contrasting_colour(rng, images, inside, min_distance=0.4)
    assert colours.shape == (200, 3)
    assert (np.linalg.norm(colours - 0.5, axis=1) >= 0.4).mean() > 0.98   # 4 tries almost never all fail


def test_background_stretch_matrix_interpolates_linearly():
    weights = bilinear_matrix(4, 10)
    assert weights.shape == (10, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(weights @ np.array([0.0, 1, 2, 3]), np.linspace(0, 3, 10), atol=1e-6)


def test_shapes_generation_is_fast():
    """Whole-array drawing: about 1 ms an image (CPU time, so a busy machine does not fail it)."""
    start = time.process_time()
    make_shapes(256)
    assert time.process_time() - start < 2.0


# ---------------------------------------------------------------- SegmentationDataset


def test_dataset_rejects_bad_examples():
    image = np.zeros((3, 4, 5), np.float32)
    with pytest.raises(ValueError, match="mask 0"):
        SegmentationDataset([image], [np.zeros((4, 4))], ["a", "b"])
    with pytest.raises(ValueError, match="label 2"):
        SegmentationDataset([image], [np.full((4, 5), 2)], ["a", "b"])
    ok = SegmentationDataset([image], [np.full((4, 5), IGNORE_INDEX)], ["a", "b"])
    assert ok[0][1].dtype == np.int64


# ---------------------------------------------------------------- load_folder


def write_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.asarray(array, np.uint8))
    if mode is not None:
        picture = picture.convert(mode)
    picture.save(path)


def write_palette_png(path, mask):
    """A "P" PNG whose palette colours are NOT the indices, as annotation tools write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.frombytes("P", mask.shape[::-1], np.asarray(mask, np.uint8).tobytes())
    picture.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200] + [77] * (3 * 253))
    picture.save(path)


def random_rgb(rng, height=6, width=7):
    return rng.integers(0, 256, (height, width, 3))


def write_pool(root, count=5, num_labels=3, rng=None):
    """DIR/images/*.png (RGB) + DIR/masks/*.png, labels 0..num_labels-1."""
    rng = rng or np.random.default_rng(0)
    for i in range(count):
        write_png(root / "images" / f"ex{i}.png", random_rgb(rng))
        mask = rng.integers(0, num_labels, (6, 7))
        mask[0, 0] = num_labels - 1                     # every label appears somewhere
        write_png(root / "masks" / f"ex{i}.png", mask)


def test_folder_pool_layout_is_split_by_seed(tmp_path):
    write_pool(tmp_path, count=5)
    train, val = load_folder(tmp_path, val_fraction=0.4, seed=0)
    assert (len(train), len(val)) == (3, 2)
    assert train.num_classes == 3 and train.class_names == ["class 0", "class 1", "class 2"]
    assert train.in_channels == 3
    image, mask = train[0]
    assert image.dtype == np.float32 and image.shape == (3, 6, 7)
    assert mask.dtype == np.int64 and mask.shape == (6, 7)
    again_train, _ = load_folder(tmp_path, val_fraction=0.4, seed=0)
    assert train.paths == again_train.paths
    assert all(np.array_equal(train[i][0], again_train[i][0]) for i in range(len(train)))
    splits = {tuple(load_folder(tmp_path, val_fraction=0.4, seed=s)[1].paths) for s in range(6)}
    assert len(splits) > 1                               # other seeds set aside other files


def test_folder_reads_the_exact_pixels(tmp_path):
    rng = np.random.default_rng(1)
    rgb, mask = random_rgb(rng), rng.integers(0, 2, (6, 7))
    write_png(tmp_path / "train" / "images" / "a.png", rgb)
    write_png(tmp_path / "train" / "masks" / "a.png", mask)
    write_png(tmp_path / "val" / "images" / "b.png", rgb)
    write_png(tmp_path / "val" / "masks" / "b.png", mask)
    train, val = load_folder(tmp_path)
    assert len(train) == 1 and len(val) == 1
    np.testing.assert_allclose(train[0][0], rgb.transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert np.array_equal(val[0][1], mask)


def test_folder_classes_txt_names_the_classes(tmp_path):
    write_pool(tmp_path, num_labels=2)
    (tmp_path / "classes.txt").write_text("sky\nroad\n\ncar\n")
    train, val = load_folder(tmp_path)
    assert train.class_names == ["sky", "road", "car"] and val.num_classes == 3


def test_folder_classes_argument(tmp_path):
    write_pool(tmp_path, num_labels=2)
    assert load_folder(tmp_path, classes=5)[0].num_classes == 5
    assert load_folder(tmp_path, classes=["a", "b"])[0].class_names == ["a", "b"]


def test_folder_ignore_label_does_not_count_as_a_class(tmp_path):
    write_pool(tmp_path, num_labels=2)
    mask = np.full((6, 7), IGNORE_INDEX)
    mask[1, 1] = 1
    write_png(tmp_path / "masks" / "ex0.png", mask)
    train, val = load_folder(tmp_path)
    assert train.num_classes == 2
    assert any((data[i][1] == IGNORE_INDEX).any() for data in (train, val) for i in range(len(data)))


def test_folder_palette_masks_give_indices(tmp_path):
    mask = np.array([[0, 1, 2], [2, 1, 0]])
    write_png(tmp_path / "train" / "images" / "a.png", np.zeros((2, 3)))
    write_palette_png(tmp_path / "train" / "masks" / "a.png", mask)
    write_png(tmp_path / "val" / "images" / "a.png", np.zeros((2, 3)))
    write_palette_png(tmp_path / "val" / "masks" / "a.png", mask)
    train, _ = load_folder(tmp_path)
    assert np.array_equal(train[0][1], mask)


def test_folder_grey_images_have_one_channel(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        write_png(tmp_path / "images" / f"g{i}.png", rng.integers(0, 256, (5, 5)))
        write_png(tmp_path / "masks" / f"g{i}.png", np.eye(5))
    train, val = load_folder(tmp_path)
    assert train.in_channels == 1 and train[0][0].shape == (1, 5, 5)


def test_folder_mixed_grey_and_rgb_become_rgb(tmp_path):
    grey = np.arange(25).reshape(5, 5) * 10
    write_png(tmp_path / "images" / "grey.png", grey)
    write_png(tmp_path / "images" / "rgb.png", np.zeros((5, 5, 3)))
    for name in ("grey", "rgb"):
        write_png(tmp_path / "masks" / f"{name}.png", np.eye(5))
    every = load_folder(tmp_path, split=False)
    assert len(every) == 2 and every.in_channels == 3
    grey_image = every[0][0]                             # sorted by name: grey first
    assert grey_image.shape == (3, 5, 5)
    np.testing.assert_allclose(grey_image, np.stack([grey / 255.0] * 3), atol=1e-7)


def test_folder_reads_jpeg_images(tmp_path):
    flat = np.full((8, 8, 3), 120)
    write_png(tmp_path / "images" / "a.jpg", flat)
    write_png(tmp_path / "images" / "b.JPEG", flat)
    for name in ("a", "b"):
        write_png(tmp_path / "masks" / f"{name}.png", np.eye(8))
    train, val = load_folder(tmp_path, val_fraction=0.5)
    image = train[0][0]
    assert image.shape == (3, 8, 8)
    np.testing.assert_allclose(image, 120 / 255.0, atol=0.02)   # JPEG is lossy, but not on a flat image


def test_folder_split_keeps_at_least_one_example_on_each_side(tmp_path):
    write_pool(tmp_path, count=5)
    assert [len(d) for d in load_folder(tmp_path, val_fraction=0.05)] == [4, 1]   # round(0.25) = 0 -> 1
    assert [len(d) for d in load_folder(tmp_path, val_fraction=0.95)] == [1, 4]
    with pytest.raises(ValueError, match="val_fraction"):
        load_folder(tmp_path, val_fraction=1.0)


def test_folder_reads_16_bit_grey_images(tmp_path):
    deep = np.array([[0, 65535], [32768, 1000]], np.uint16)
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        Image.fromarray(deep).save(tmp_path / split / "images" / "a.png")
        write_png(tmp_path / split / "masks" / "a.png", np.eye(2))
    train, _ = load_folder(tmp_path)
    np.testing.assert_allclose(train[0][0], deep[None] / 65535.0, rtol=1e-6)


def test_folder_skips_hidden_files(tmp_path):
    write_pool(tmp_path, count=3)
    (tmp_path / "masks" / ".DS_Store").write_bytes(b"junk")
    train, val = load_folder(tmp_path)
    assert len(train) + len(val) == 3


def test_folder_refuses_two_files_of_one_name(tmp_path):
    write_pool(tmp_path, count=3)
    write_png(tmp_path / "images" / "ex1.jpg", np.zeros((6, 7, 3)))
    with pytest.raises(ValueError, match=r"ex1\.(png|jpg) and .*ex1\.(png|jpg) share the name 'ex1'"):
        load_folder(tmp_path)


def test_folder_refuses_other_file_types(tmp_path):
    write_pool(tmp_path, count=3)
    write_png(tmp_path / "images" / "odd.bmp", np.zeros((6, 7, 3)))
    with pytest.raises(ValueError, match=r"odd\.bmp: an unsupported type '\.bmp'"):
        load_folder(tmp_path)


def test_folder_of_ignore_only_masks_needs_classes(tmp_path):
    write_png(tmp_path / "images" / "a.png", np.zeros((3, 3)))
    write_png(tmp_path / "masks" / "a.png", np.full((3, 3), IGNORE_INDEX))
    with pytest.raises(ValueError, match="pass classes="):
        load_folder(tmp_path, split=False)
    assert load_folder(tmp_path, classes=2, split=False).num_classes == 2


def test_folder_checks_the_classes_argument(tmp_path):
    write_pool(tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        load_folder(tmp_path, classes=0)
    with pytest.raises(ValueError, match="the string '3'"):
        load_folder(tmp_path, classes="3")


def test_folder_needs_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"tinyseg\[images\]"):
        load_folder(tmp_path)


# Every bad input stops the load with a DataError (a ValueError) naming the file at fault.

def test_folder_image_without_mask(tmp_path):
    write_pool(tmp_path)
    write_png(tmp_path / "images" / "lonely.png", np.zeros((6, 7, 3)))
    with pytest.raises(ValueError, match="lonely.png: an image without a mask"):
        load_folder(tmp_path)


def test_folder_mask_without_image(tmp_path):
    write_pool(tmp_path)
    write_png(tmp_path / "masks" / "orphan.png", np.zeros((6, 7)))
    with pytest.raises(ValueError, match="orphan.png: a mask without an image"):
        load_folder(tmp_path)


def test_folder_mask_of_another_size(tmp_path):
    write_pool(tmp_path)
    write_png(tmp_path / "masks" / "ex3.png", np.zeros((7, 6)))
    with pytest.raises(ValueError, match=r"ex3\.png: 6x7 .* but its image ex3\.png is 7x6"):
        load_folder(tmp_path)


def test_folder_label_beyond_the_classes(tmp_path):
    write_pool(tmp_path, num_labels=3)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"ex\d\.png: holds the label 2, but there are 2 classes"):
        load_folder(tmp_path)


def test_folder_label_beyond_classes_argument(tmp_path):
    write_pool(tmp_path, num_labels=2)
    bad = np.zeros((6, 7))
    bad[2, 2] = 9
    write_png(tmp_path / "masks" / "ex4.png", bad)
    with pytest.raises(ValueError, match=r"ex4\.png: holds the label 9.*classes=3"):
        load_folder(tmp_path, classes=3)


def test_folder_jpeg_mask(tmp_path):
    write_pool(tmp_path)
    (tmp_path / "masks" / "ex1.png").unlink()
    write_png(tmp_path / "masks" / "ex1.jpg", np.zeros((6, 7)))
    with pytest.raises(ValueError, match=r"ex1\.jpg: a JPEG"):
        load_folder(tmp_path)


def test_folder_rgb_mask(tmp_path):
    write_pool(tmp_path)
    write_png(tmp_path / "masks" / "ex2.png", np.zeros((6, 7, 3)))
    with pytest.raises(ValueError, match=r"ex2\.png: a mask of 3 channels"):
        load_folder(tmp_path)


def test_folder_without_a_known_layout(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(ValueError, match="neither images/ and masks/ nor train/ and val/"):
        load_folder(tmp_path)


def test_folder_split_layout_needs_both_splits(tmp_path):
    write_pool(tmp_path / "train")
    with pytest.raises(ValueError, match="val.*missing"):
        load_folder(tmp_path)


# ---------------------------------------------------------------- DataLoader


def numbered_dataset(count=10, size=4):
    """Example i is an image filled with the value i, so a batch tells which examples it holds."""
    images = [np.full((1, size, size), i, np.float32) for i in range(count)]
    masks = [np.full((size, size), i % 3) for i in range(count)]
    return SegmentationDataset(images, masks, ["a", "b", "c"])


def served_order(loader):
    return [int(image[0, 0, 0]) for images, _ in loader for image in images]


def test_loader_batches_have_the_right_shapes_and_dtypes():
    loader = DataLoader(make_shapes(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    images, masks = batches[0]
    assert images.shape == (4, 3, 64, 64) and images.dtype == np.float32
    assert masks.shape == (4, 64, 64) and masks.dtype == np.int64
    assert batches[-1][0].shape[0] == 2                        # 10 = 4 + 4 + 2


def test_loader_drop_last():
    loader = DataLoader(numbered_dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [images.shape[0] for images, _ in loader] == [4, 4]


def test_loader_serves_every_example_once_per_epoch():
    loader = DataLoader(numbered_dataset(10), batch_size=3, seed=5)
    for _ in range(3):
        assert sorted(served_order(loader)) == list(range(10))


def test_loader_without_shuffle_keeps_the_dataset_order():
    loader = DataLoader(numbered_dataset(10), batch_size=3, shuffle=False)
    assert served_order(loader) == list(range(10))


def test_loader_order_depends_only_on_seed_and_epoch():
    loader = DataLoader(numbered_dataset(20), batch_size=4, seed=7)
    epochs = [served_order(loader) for _ in range(3)]
    assert loader.epoch == 3
    assert epochs[0] != epochs[1] != epochs[2]                 # a new order every epoch
    fresh = DataLoader(numbered_dataset(20), batch_size=4, seed=7)
    fresh.set_epoch(2)
    assert served_order(fresh) == epochs[2]
    other_seed = DataLoader(numbered_dataset(20), batch_size=4, seed=8)
    assert served_order(other_seed) != epochs[0]


def test_loader_resumed_with_set_epoch_reproduces_the_augmented_batches():
    data = make_shapes(12)
    straight = DataLoader(data, batch_size=5, seed=3, augment=True)
    for _ in range(2):
        list(straight)
    expected = list(straight)                                 # epoch 2 of the uninterrupted run
    resumed = DataLoader(data, batch_size=5, seed=3, augment=True)
    resumed.set_epoch(2)                                      # what fit() does on --resume
    for (images, masks), (want_images, want_masks) in zip(resumed, expected):
        assert np.array_equal(images, want_images) and np.array_equal(masks, want_masks)


def test_loader_epoch_advances_only_after_a_full_pass():
    loader = DataLoader(numbered_dataset(10), batch_size=3)
    for _ in loader:
        break
    assert loader.epoch == 0


def test_augment_flips_image_and_mask_together():
    """The mask is a function of the image; flips that kept them aligned keep it so."""
    rng = np.random.default_rng(0)
    images = rng.random((16, 2, 5, 6)).astype(np.float32)
    masks = np.floor(images[:, 0] * 4).astype(np.int64)        # label = which quarter image[0] is in
    loader = DataLoader(SegmentationDataset(images, masks, list("abcd")), batch_size=4, augment=True)
    seen = set()
    for _ in range(2):
        for batch_images, batch_masks in loader:
            assert np.array_equal(batch_masks, np.floor(batch_images[:, 0] * 4))
            for image in batch_images:
                original = next(x for x in images if np.isclose(x.sum(), image.sum()))
                views = {"none": original, "h": original[:, :, ::-1],
                         "v": original[:, ::-1], "hv": original[:, ::-1, ::-1]}
                seen.add(next(flip for flip, view in views.items() if np.array_equal(view, image)))
    assert seen == {"none", "h", "v", "hv"}                    # every flip happens


def test_loader_without_augment_does_not_flip():
    data = make_shapes(6)
    images, _ = next(iter(DataLoader(data, batch_size=6, shuffle=False)))
    assert np.array_equal(images, np.stack(data.images))


def test_loader_pads_smaller_images():
    images = [np.ones((1, 3, 4), np.float32), np.ones((1, 5, 2), np.float32)]
    masks = [np.zeros((3, 4)), np.ones((5, 2))]
    data = SegmentationDataset(images, masks, ["a", "b"])
    batch_images, batch_masks = next(iter(DataLoader(data, batch_size=2, shuffle=False)))
    assert batch_images.shape == (2, 1, 5, 4) and batch_masks.shape == (2, 5, 4)
    assert batch_images[0, 0, :3, :4].min() == 1 and batch_images[0, 0, 3:].max() == 0
    assert (batch_masks[0, :3, :4] == 0).all() and (batch_masks[0, 3:] == IGNORE_INDEX).all()
    assert (batch_masks[1, :, :2] == 1).all() and (batch_masks[1, :, 2:] == IGNORE_INDEX).all()


def test_collate_refuses_mixed_channels():
    with pytest.raises(ValueError, match="channel count"):
        collate([(np.zeros((1, 2, 2)), np.zeros((2, 2))), (np.zeros((3, 2, 2)), np.zeros((2, 2)))])


def test_loader_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(numbered_dataset(), batch_size=0)
