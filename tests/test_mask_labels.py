"""MaskLabels: colour-coded masks (--mask-colors), id maps (--label-map), --reduce-zero-label, and
the order they apply in; each read through load_folder from a small folder made here."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from tinyseg.data import DataError, MaskLabels, load_folder, read_mask

CAMVID_TABLE = "name,r,g,b\nSky,128,128,128\nRoad,128,64,128\nCar,64,0,128\nVoid,0,0,0\n"
SKY, ROAD, CAR, VOID = (128, 128, 128), (128, 64, 128), (64, 0, 128), (0, 0, 0)


def save(path, array, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path, **options)
    return path


def painted(colours, rows=4, columns=5):
    """An RGB mask (rows, columns, 3) whose row i is painted colours[i % len(colours)]."""
    return np.array([[colours[i % len(colours)]] * columns for i in range(rows)], np.uint8)


def write_table(tmp_path, text, name="class_dict.csv"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


# ---------------------------------------------------------------- the colour table


def test_colour_masks_are_read_through_the_table(tmp_path):
    labels = MaskLabels.from_files(mask_colors=write_table(tmp_path, CAMVID_TABLE))
    assert labels.class_names == ["Sky", "Road", "Car", "Void"] and labels.reads_colors
    rgb = save(tmp_path / "rgb.png", painted([ROAD, SKY, CAR, VOID]))
    assert np.array_equal(read_mask(rgb, labels), np.repeat([[1], [0], [2], [3]], 5, axis=1))
    rgba = save(tmp_path / "rgba.png", np.concatenate([painted([CAR]), np.full((4, 5, 1), 9, np.uint8)], 2))
    assert (read_mask(rgba, labels) == 2).all()                            # alpha dropped
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([*SKY, *CAR])
    palette.save(tmp_path / "palette.png")                                  # a palette mask: its colours
    assert np.array_equal(read_mask(tmp_path / "palette.png", labels), [[0, 2], [2, 0]])


def test_a_grey_mask_is_read_as_grey_colours(tmp_path):
    """Black-and-white masks go with a table of black and white, as a viewer shows them."""
    labels = MaskLabels.from_files(mask_colors=write_table(tmp_path, "background,0,0,0\ncell,255,255,255\n"))
    save(tmp_path / "bw.png", np.array([[0, 255], [255, 0]]))
    assert np.array_equal(read_mask(tmp_path / "bw.png", labels), [[0, 1], [1, 0]])
    Image.fromarray(np.array([[0, 1], [1, 0]], bool)).save(tmp_path / "bits.png")         # 1-bit: white = 1
    assert np.array_equal(read_mask(tmp_path / "bits.png", labels), [[0, 1], [1, 0]])


def test_an_unknown_colour_is_named_with_its_pixel_count(tmp_path):
    table = write_table(tmp_path, CAMVID_TABLE)
    labels = MaskLabels.from_files(mask_colors=table)
    mask = painted([SKY], rows=8)
    mask[:3, :4] = (12, 200, 3)                                              # 12 pixels
    mask[7, 0] = (1, 2, 3)                                                   # 1 pixel
    save(tmp_path / "odd.png", mask)
    with pytest.raises(DataError) as caught:
        read_mask(tmp_path / "odd.png", labels)
    assert caught.value.problems == [(str(tmp_path / "odd.png"), f"holds 12 pixels of colour (12, 200, 3) "
                                      f"(and 1 more colours, 1 pixels), which is not in {table}")]


def test_colour_table_files_are_checked_line_by_line(tmp_path):
    cases = {"sky,1,2\n": "line 1 has 3 fields, expected name,r,g,b",
             "name,r,g,b\nsky,1,2,300\n": "line 2: '300' is not a colour value 0..255",
             "sky,1,2,x\n": "line 1: 'x' is not a colour value",       # a header holds no number
             "name,r,g,b\nsky,1,2,3\nr,g,b,a\n": "line 3: 'g' is not a colour value",   # only line 1
             "sky,1,2,3\n\n# comment\nroad,1,2,3\n": "line 4: the colour (1, 2, 3) is also on line 1",
             ",1,2,3\n": "line 1: the class name is empty",
             "name,r,g,b\n": "no entries"}
    for number, (text, message) in enumerate(cases.items()):
        path = write_table(tmp_path, text, f"t{number}.csv")
        with pytest.raises(ValueError, match=f"^--mask-colors {re.escape(str(path))}: {re.escape(message)}"):
            MaskLabels.from_files(mask_colors=path)
    with pytest.raises(ValueError, match=r"^--mask-colors .*missing\.csv: no such file"):
        MaskLabels.from_files(mask_colors=tmp_path / "missing.csv")
    many = "".join(f"c{i},{i},0,0\n" for i in range(256))
    with pytest.raises(ValueError, match="256 colours, but there can be at most 255 classes"):
        MaskLabels.from_files(mask_colors=write_table(tmp_path, many, "many.csv"))
    bom = write_table(tmp_path, "\ufeffname,r,g,b\nsky,1,2,3\n", "excel.csv")        # Excel's BOM
    assert MaskLabels.from_files(mask_colors=bom).class_names == ["sky"]


# ---------------------------------------------------------------- label map, reduce zero, their order


def test_label_map_sends_unlisted_ids_to_ignore(tmp_path):
    path = write_table(tmp_path, "id,train_id\n7,0\n8,1\n26,2\n1000,1\n", "ids.csv")
    labels = MaskLabels.from_files(label_map=path)
    raw = np.array([[7, 8, 26], [0, 255, 1000]])
    assert np.array_equal(labels.decode(raw, "m.png"), [[0, 1, 2], [255, 255, 1]])
    assert labels.class_names is None and labels.palette() is None and not labels.reads_colors
    for text, message in {"7,0\n7,1\n": "line 2: the id 7 is also on line 1",
                          "7,x\n": "line 1: the train id 'x' is not a whole number",
                          "id,train_id\n": "no entries",                 # a header, then nothing
                          "seven,0\n": "line 1: the id 'seven' is not a whole number",
                          "7,0\n-1,2\n": "line 2: the id '-1' is not a whole number >= 0",
                          "7,256\n": "line 1: the train id 256 is above 255"}.items():
        bad = write_table(tmp_path, text, "bad.csv")
        with pytest.raises(ValueError, match=f"^--label-map {re.escape(str(bad))}: {re.escape(message)}"):
            MaskLabels.from_files(label_map=bad)


def test_reduce_zero_label_as_ade20k():
    labels = MaskLabels(reduce_zero_label=True)
    assert np.array_equal(labels.decode(np.array([0, 1, 2, 150, 255]), "m.png"), [255, 0, 1, 149, 255])


def test_colours_then_reduce_zero_then_label_map(tmp_path):
    """The order of mmsegmentation's LoadAnnotations: each step reads what the one before gave."""
    table = write_table(tmp_path, "void,0,0,0\nsky,0,0,255\nroad,0,255,0\ncar,255,0,0\n")
    ids = write_table(tmp_path, "0,1\n1,0\n", "ids.csv")                       # sky <-> road; car unlisted
    labels = MaskLabels.from_files(mask_colors=table, label_map=ids, reduce_zero_label=True)
    colours = np.array([[(0, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 0)]], np.uint8)
    assert np.array_equal(labels.decode(colours, "m.png"), [[255, 1, 0, 255]])
    # colour -> row [0, 1, 2, 3] -> reduce zero [255, 0, 1, 2] -> map [255, 1, 0, 255]
    assert np.array_equal(labels.palette(), [(0, 255, 0), (0, 0, 255)])    # class 0 is road's colour now
    reduced = MaskLabels.from_files(mask_colors=table, reduce_zero_label=True)
    assert reduced.class_names == ["sky", "road", "car"]


def test_mask_labels_survive_a_json_round_trip(tmp_path):
    labels = MaskLabels.from_files(mask_colors=write_table(tmp_path, CAMVID_TABLE),
                                   label_map=write_table(tmp_path, "0,0\n3,255\n", "ids.csv"))
    stored = json.loads(json.dumps(labels.to_json()))                         # as a checkpoint keeps it
    again = MaskLabels.from_json(stored)
    assert again == labels and again.colors_file == labels.colors_file
    colours = painted([SKY, VOID, ROAD])
    assert np.array_equal(again.decode(colours, "m.png"), labels.decode(colours, "m.png"))
    assert MaskLabels.from_json(None) == MaskLabels()                         # older checkpoints
    assert np.array_equal(MaskLabels.from_files(mask_colors=tmp_path / "class_dict.csv").palette(),
                          [SKY, ROAD, CAR, VOID])


# ---------------------------------------------------------------- through load_folder


def test_load_folder_reads_a_camvid_style_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        save(tmp_path / "images" / f"f{i}.png", rng.integers(0, 256, (4, 5, 3)))
        save(tmp_path / "masks" / f"f{i}.png", painted([SKY, ROAD, CAR, VOID][i % 2:]))
    labels = MaskLabels.from_files(mask_colors=write_table(tmp_path, CAMVID_TABLE))
    train, val = load_folder(tmp_path, val_count=1, mask_labels=labels)
    assert train.class_names == ["Sky", "Road", "Car", "Void"] and train.mask_labels is labels
    assert val.mask_labels is labels
    served = np.concatenate([train[i][1].ravel() for i in range(len(train))] +
                            [val[i][1].ravel() for i in range(len(val))])
    assert set(served) == {0, 1, 2, 3}
    assert train.class_pixel_counts().sum() + val.class_pixel_counts().sum() == served.size
    assert load_folder(tmp_path, classes=["a", "b", "c", "d"], split=False,
                       mask_labels=labels).class_names == ["a", "b", "c", "d"]   # --classes wins
    with pytest.raises(DataError, match=r"masks/f0\.png: a mask of 3 channels.*--mask-colors"):
        load_folder(tmp_path)                                                 # no table: refused


def test_load_folder_lists_every_unknown_colour(tmp_path):
    for i in range(3):
        save(tmp_path / "images" / f"f{i}.png", np.zeros((4, 5, 3)))
        mask = painted([SKY, ROAD])
        mask[0, :i + 1] = (9, 9, 9)
        save(tmp_path / "masks" / f"f{i}.png", mask)
    table = write_table(tmp_path, CAMVID_TABLE)
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path, mask_labels=MaskLabels.from_files(mask_colors=table))
    assert [what for _, what in caught.value.problems] == [
        f"holds {n} pixels of colour (9, 9, 9), which is not in {table}" for n in (1, 2, 3)]


def test_load_folder_with_reduce_zero_label_and_a_label_map(tmp_path):
    for i in range(3):
        save(tmp_path / "images" / f"a{i}.png", np.zeros((2, 4)))
        save(tmp_path / "masks" / f"a{i}.png", np.array([[0, 1, 2, 3], [3, 2, 1, 255]]))
    data = load_folder(tmp_path, split=False, mask_labels=MaskLabels(reduce_zero_label=True))
    assert data.num_classes == 3 and np.array_equal(data[0][1], [[255, 0, 1, 2], [2, 1, 0, 255]])
    mapped = load_folder(tmp_path, split=False, mask_labels=MaskLabels(label_map={1: 0, 3: 1}))
    assert mapped.num_classes == 2 and np.array_equal(mapped[0][1], [[255, 0, 255, 1], [1, 255, 0, 255]])
