"""eval's confusion matrix: the printed tables and the picture hold metrics' own numbers."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from tinyseg.cli import main
from tinyseg.metrics import format_confusion, row_normalized
from tinyseg.visualize import confusion_cell_texts, save_confusion_matrix

from tiny_runs import tiny_checkpoint

HAND_MATRIX = np.array([[2, 1, 0],      # true 0: 2 right, 1 called "1"   (test_metrics.py's example)
                        [0, 2, 0],      # true 1: both right
                        [1, 0, 1]])     # true 2: 1 called "0", 1 right


def test_row_normalised_rows_sum_to_one_and_an_absent_class_is_nan():
    shares = row_normalized(np.array([[2, 1, 0], [0, 0, 0], [1, 0, 3]]))
    np.testing.assert_allclose(shares[0], [2 / 3, 1 / 3, 0])
    assert np.isnan(shares[1]).all()
    np.testing.assert_allclose(shares[2].sum(), 1)


def test_format_confusion_prints_counts_then_shares_with_the_class_names():
    text = format_confusion(HAND_MATRIX, ["bg", "disc", "square"]).splitlines()
    assert text[0].startswith("confusion matrix (rows: true class")
    assert text[1].split() == ["bg", "disc", "square"]
    assert [line.split() for line in text[2:5]] == [["bg", "2", "1", "0"], ["disc", "0", "2", "0"],
                                                   ["square", "1", "0", "1"]]
    assert text[5].startswith("row-normalised")
    assert text[7].split() == ["bg", "0.667", "0.333", "0.000"]


@settings(max_examples=5)                       # each example draws and encodes a figure
@given(matrix=arrays(np.int64, st.integers(1, 5).map(lambda n: (n, n)), elements=st.integers(0, 10**6)))
def test_the_picture_holds_the_matrix_numbers(matrix):
    pytest.importorskip("matplotlib")
    names = [f"class {i}" for i in range(len(matrix))]
    with tempfile.TemporaryDirectory() as folder:
        counts, shares = save_confusion_matrix(Path(folder) / "c.png", matrix, names)   # as drawn
        assert (Path(folder) / "c.png").stat().st_size > 0
    assert (counts, shares) == confusion_cell_texts(matrix)
    assert np.array_equal(np.array(counts, dtype=np.int64), matrix)
    expected = row_normalized(matrix)
    for t, row in enumerate(shares):
        for p, text in enumerate(row):
            assert (text == "-") if np.isnan(expected[t, p]) else abs(float(text) - expected[t, p]) <= 0.005


def test_without_matplotlib_there_is_a_note_and_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert save_confusion_matrix(tmp_path / "c.png", HAND_MATRIX, ["a", "b", "c"]) is None
    assert "pip install 'tinyseg[plot]'" in capsys.readouterr().out
    assert not (tmp_path / "c.png").exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("eval_run"), "fcn")


def test_eval_prints_the_matrix_and_draws_it(checkpoint, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    picture = tmp_path / "confusion.png"
    assert main(["eval", "--checkpoint", checkpoint, "--out", str(picture)]) == 0
    printed = capsys.readouterr().out
    assert "confusion matrix (rows: true class, columns: predicted class), pixels" in printed
    assert "row-normalised" in printed and f"wrote {picture}" in printed
    lines = printed.splitlines()
    first = lines.index("confusion matrix (rows: true class, columns: predicted class), pixels")
    counts = np.array([[int(v) for v in line.split()[1:]] for line in lines[first + 2:first + 6]])
    assert counts.sum() == 4 * 24 * 24                                      # every validation pixel
    assert picture.stat().st_size > 0


@pytest.mark.parametrize("out", ["matrix.txt", "."])
def test_eval_out_must_name_a_png_file(checkpoint, tmp_path, capsys, out):
    assert main(["eval", "--checkpoint", checkpoint, "--out", str(tmp_path / out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyseg eval: error: --out names the confusion-matrix picture, a .png file")
