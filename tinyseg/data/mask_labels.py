"""MaskLabels: how the values (or colours) of a mask file become class indices.

Datasets do not all ship masks of class indices 0..C-1. Three common ways
they differ, and the option that reads each:

    colour-coded masks (CamVid)   --mask-colors FILE    a CSV of name,r,g,b: class i is row i
    ids to train ids (Cityscapes) --label-map FILE      a CSV of id,train_id: unlisted ids -> 255
    0 means "unlabelled" (ADE20K) --reduce-zero-label   0 -> 255, every other label one less

Combined, they apply in this order, the order of mmsegmentation's
LoadAnnotations (so a config moves across unchanged):

    pixel colour --(colour table)--> row i --(reduce zero)--> --(label map)--> class index

    a CamVid pixel (128, 64, 128) -> row 4 ("Road") -> 4
    an ADE20K pixel 0 -> 255 (ignore);  1 -> 0;  150 -> 149;  255 -> 255
    a Cityscapes pixel 7 ("road") -> train id 0;  0 ("unlabeled"), not listed -> 255

The CSV files: one entry a line, blank lines and lines starting with '#'
skipped; the first line may be a header (CamVid's class_dict.csv starts
"name,r,g,b"), recognised by holding no number where the numbers go.

With a colour table every mask is read as colours: RGB(A) and palette masks
give their colours, and a grey mask its grey v as the colour (v, v, v), so a
black-and-white mask and a table "background,0,0,0 / object,255,255,255"
go together. A colour not in the table is a problem naming the file, the
colour and its pixel count.

The object is stored in checkpoints (to_json / from_json), so eval and
predict read masks exactly as training did, and palette() gives the table's
colours back for writing predicted masks in the dataset's own colours.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tinyseg.data.dataset import IGNORE_INDEX
from tinyseg.data.problems import file_error


class MaskLabels:
    """The steps from a mask file's values to class indices; MaskLabels() changes nothing.

    colors: [(name, (r, g, b)), ...], class i is row i; None: masks hold indices.
    label_map: {id: train_id}; ids not listed become 255 (ignore). None: no map.
    reduce_zero_label: 0 becomes 255, every other label one less (255 stays 255).
    colors_file, label_map_file: where they came from, named in messages.
    """

    def __init__(self, colors=None, label_map=None, reduce_zero_label: bool = False,
                 colors_file: str = "the colour table", label_map_file: str = "the label map"):
        self.colors = None if colors is None else [(str(name), tuple(int(v) for v in rgb))
                                                   for name, rgb in colors]
        self.label_map = None if label_map is None else {int(k): int(v) for k, v in label_map.items()}
        self.reduce_zero_label = bool(reduce_zero_label)
        self.colors_file, self.label_map_file = str(colors_file), str(label_map_file)
        if self.colors == [] or self.label_map == {}:
            raise ValueError("MaskLabels: an empty colour table or label map; pass None for none")
        if self.colors is not None:
            codes = np.array([color_code(rgb) for _, rgb in self.colors], dtype=np.int64)
            self.color_order = np.argsort(codes)                       # rows, by colour code
            self.sorted_codes = codes[self.color_order]
        if self.label_map is not None:
            self.map_ids = np.array(sorted(self.label_map), dtype=np.int64)
            self.map_train_ids = np.array([self.label_map[i] for i in self.map_ids], dtype=np.int64)

    @classmethod
    def from_files(cls, mask_colors=None, label_map=None, reduce_zero_label: bool = False):
        """MaskLabels from the option files; ValueError naming the option, the line and the problem."""
        colors = read_color_table(mask_colors) if mask_colors is not None else None
        mapping = read_label_map(label_map) if label_map is not None else None
        return cls(colors, mapping, reduce_zero_label,
                   colors_file=str(mask_colors or "the colour table"),
                   label_map_file=str(label_map or "the label map"))

    @property
    def reads_colors(self) -> bool:
        """True when masks are colour pictures looked up in a colour table."""
        return self.colors is not None

    @property
    def class_names(self) -> list[str] | None:
        """The colour table's names of the final classes; None without a table or with a label map."""
        if self.colors is None or self.label_map is not None:
            return None
        names = [name for name, _ in self.colors]
        return names[1:] if self.reduce_zero_label else names

    def decode(self, raw: np.ndarray, path) -> np.ndarray:
        """Class indices int64 (H, W) of a mask's values (H, W), or its colours (H, W, 3) uint8.

        Raises DataError naming `path` if a colour is not in the table.
        """
        labels = self.rows_of_colors(raw, path) if self.colors is not None else raw.astype(np.int64)
        if self.reduce_zero_label:
            labels = np.where((labels == 0) | (labels == IGNORE_INDEX), IGNORE_INDEX, labels - 1)
        if self.label_map is not None:
            labels = lookup(labels, self.map_ids, self.map_train_ids)
        return labels

    def rows_of_colors(self, colors: np.ndarray, path) -> np.ndarray:
        """The table row (H, W) of every pixel's colour (H, W, 3); DataError if one is not in the table."""
        codes = color_code(colors.astype(np.int64).transpose(2, 0, 1))   # (H, W) one number a colour
        rows = lookup(codes, self.sorted_codes, self.color_order, missing=-1)
        if (rows < 0).any():
            unknown, counts = np.unique(codes[rows < 0], return_counts=True)
            first = np.argmax(counts)
            others = (f" (and {len(unknown) - 1} more colours, {counts.sum() - counts[first]} pixels)"
                      if len(unknown) > 1 else "")
            raise file_error(path, f"holds {counts[first]} pixels of colour {code_color(unknown[first])}"
                                   f"{others}, which is not in {self.colors_file}")
        return rows

    def palette(self) -> np.ndarray | None:
        """uint8 (K, 3): the table's colour of each final class 0..K-1 (the first row that gives it).

        For writing predicted masks in the dataset's own colours; None without a colour table.
        """
        if self.colors is None:
            return None
        finals = self.decode(np.array([rgb for _, rgb in self.colors], np.uint8)[:, None], "palette")
        palette = np.zeros((max([f for f in finals[:, 0] if f != IGNORE_INDEX], default=-1) + 1, 3),
                           np.uint8)
        for (_, rgb), final in reversed(list(zip(self.colors, finals[:, 0]))):
            if final != IGNORE_INDEX:
                palette[final] = rgb                 # walked backwards, so the first row wins
        return palette

    def to_json(self) -> dict:
        """A dict of lists and numbers (json.dumps-able): what a checkpoint stores."""
        return {"mask_colors": None if self.colors is None else [[n, *rgb] for n, rgb in self.colors],
                "mask_colors_file": self.colors_file,
                "label_map": None if self.label_map is None else sorted(self.label_map.items()),
                "label_map_file": self.label_map_file,
                "reduce_zero_label": self.reduce_zero_label}

    @classmethod
    def from_json(cls, data: dict | None) -> MaskLabels:
        """The MaskLabels `to_json` described (None, as older checkpoints have: MaskLabels())."""
        if not data:
            return cls()
        colors = data.get("mask_colors")
        mapping = data.get("label_map")
        return cls(None if colors is None else [(row[0], row[1:4]) for row in colors],
                   None if mapping is None else {k: v for k, v in mapping},
                   data.get("reduce_zero_label", False),
                   data.get("mask_colors_file", "the colour table"),
                   data.get("label_map_file", "the label map"))

    def __eq__(self, other) -> bool:
        return isinstance(other, MaskLabels) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        parts = [f"mask_colors={self.colors_file!r} ({len(self.colors)} colours)"] if self.colors else []
        parts += [f"label_map={self.label_map_file!r} ({len(self.label_map)} ids)"] if self.label_map else []
        parts += ["reduce_zero_label=True"] if self.reduce_zero_label else []
        return f"MaskLabels({', '.join(parts)})"


def color_code(rgb) -> np.ndarray | int:
    """One integer a colour, r * 65536 + g * 256 + b (of a tuple, or of arrays r, g, b)."""
    red, green, blue = rgb
    return red * 65536 + green * 256 + blue


def code_color(code: int) -> tuple[int, int, int]:
    code = int(code)
    return code // 65536, code // 256 % 256, code % 256


def lookup(values: np.ndarray, keys: np.ndarray, results: np.ndarray, missing: int = IGNORE_INDEX):
    """results[i] where values == keys[i] (keys sorted, at least one), `missing` where a value is no key."""
    position = np.minimum(np.searchsorted(keys, values), len(keys) - 1)   # where each value would go
    return np.where(keys[position] == values, results[position], missing).astype(np.int64)


# ---------------------------------------------------------------- the option files

def csv_rows(path, option: str, fields: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of each entry of a CSV file, its header left out.

    The first entry is a header if none of its numbers (the cells after the
    name of `name,r,g,b`, both cells of `id,train_id`) is an integer.
    ValueError naming `option` if the file is missing, has no entry, or a
    line has another number of fields.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{option} {path}: no such file (expected a CSV of {fields} lines)")
    lines = path.read_text(encoding="utf-8-sig").splitlines()           # (a BOM, as Excel writes, dropped)
    rows, first = [], True
    for number, cells in enumerate(csv.reader(lines), start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != fields.count(",") + 1:
            raise ValueError(f"{option} {path}: line {number} has {len(cells)} fields, expected "
                             f"{fields}: {lines[number - 1].strip()!r}")
        numbers = cells[1:] if fields.startswith("name") else cells
        header = first and not any(is_integer(cell) for cell in numbers)
        first = False
        if not header:
            rows.append((number, cells))
    if not rows:
        raise ValueError(f"{option} {path}: no entries; expected {fields} lines")
    return rows


def is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_color_table(path) -> list:
    """[(name, (r, g, b)), ...] of a `name,r,g,b` CSV; ValueError naming --mask-colors and the line."""
    option, colors, seen = "--mask-colors", [], {}
    for number, (name, *values) in csv_rows(path, option, "name,r,g,b"):
        for value in values:
            if not is_integer(value) or not 0 <= int(value) <= 255:
                raise ValueError(f"{option} {path}: line {number}: {value!r} is not a colour value "
                                 "0..255 (expected name,r,g,b)")
        rgb = tuple(int(value) for value in values)
        if rgb in seen:
            raise ValueError(f"{option} {path}: line {number}: the colour {rgb} is also on line "
                             f"{seen[rgb]}: one colour, one class")
        if not name:
            raise ValueError(f"{option} {path}: line {number}: the class name is empty")
        seen[rgb] = number
        colors.append((name, rgb))
    if len(colors) > IGNORE_INDEX:
        raise ValueError(f"{option} {path}: {len(colors)} colours, but there can be at most "
                         f"{IGNORE_INDEX} classes (0..{IGNORE_INDEX - 1}; {IGNORE_INDEX} is ignore)")
    return colors


def read_label_map(path) -> dict[int, int]:
    """{id: train_id} of an `id,train_id` CSV; ValueError naming --label-map and the line."""
    option, mapping, seen = "--label-map", {}, {}
    for number, (source, target) in csv_rows(path, option, "id,train_id"):
        for value, what in ((source, "id"), (target, "train id")):
            if not is_integer(value) or int(value) < 0:
                raise ValueError(f"{option} {path}: line {number}: the {what} {value!r} is not a "
                                 "whole number >= 0 (expected id,train_id)")
        if int(target) > IGNORE_INDEX:
            raise ValueError(f"{option} {path}: line {number}: the train id {target} is above "
                             f"{IGNORE_INDEX}: train ids are classes 0..{IGNORE_INDEX - 1} or "
                             f"{IGNORE_INDEX} (ignore)")
        if int(source) in seen:
            raise ValueError(f"{option} {path}: line {number}: the id {source} is also on line "
                             f"{seen[int(source)]}")
        seen[int(source)] = number
        mapping[int(source)] = int(target)
    return mapping
