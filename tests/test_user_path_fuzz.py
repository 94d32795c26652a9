"""The user path, fuzzed: any folder trains, validates and predicts, or is refused in a line.

Hypothesis draws data folders as people bring them (strategies.user_folders:
sizes from 1x1 to a few hundred pixels, every bit depth and channel layout of
PNG, JPEG and TIFF, names with spaces, non-ASCII text and invalid UTF-8
bytes, hidden and system files, broken and cut-short files, masks of every
kind) and options (model, crop, scale, batch size, counts, classes,
augmentation), then runs the real commands as subprocesses, as a user would:
`train`, then `eval` and `predict` on what it trained. One property decides
(`check_run`):

    either  exit 0 with complete, correct outputs: every file loads, the
            files the run says it wrote exist, the masks are read as stored
            and the pixels as a reference reader gives them (checked through
            the same dataset code train used), eval scores every pair and
            predict writes one mask per input at the input's size;
    or      exit 1 with a short error that names a file or an option;
    never   a traceback, an "internal error", or any other exit status.

How many examples: TINYSEG_FUZZ_EXAMPLES (default 10, about two minutes on
two cores; the CI runs the default). Run many more before a release:

    TINYSEG_FUZZ_EXAMPLES=300 python -m pytest tests/test_user_path_fuzz.py -q

A generated case that finds a bug stays as an @example below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from strategies import REFUSED, user_folders
from user_files import unreadable_files

pytest.importorskip("PIL.Image")
pytest.importorskip("tifffile")

EXAMPLES = int(os.environ.get("TINYSEG_FUZZ_EXAMPLES", "10"))
MODELS = {
    "unet": ["--model", "unet", "--base-channels", "2", "--depth", "1"],
    "fcn": ["--model", "fcn", "--width", "4", "--depth", "1"],
    "naive": ["--model", "naive", "--width", "4", "--window", "5", "--naive-depth", "1",
              "--windows-per-image", "8"],
}
NUMBER_OF_FOLDERS = iter(range(10 ** 9))


@st.composite
def runs(draw, base: Path):
    """(a UserFolder, the options of `tinyseg train` for it)."""
    folder = draw(user_folders(base / f"case {next(NUMBER_OF_FOLDERS)}"))
    options = ["--epochs", "1", "--no-progress", "--batch-size", str(draw(st.integers(1, 3)))]
    options += MODELS[draw(st.sampled_from(sorted(MODELS)))] + folder.options
    options += ["--augment", draw(st.sampled_from(["none", "flip", "standard"]))]
    if folder.train is None:                 # now and then all of them: too many to set aside
        options += ["--val-count", str(draw(st.integers(1, len(folder.images) - (draw(st.integers(0, 5)) > 0))))]
    if draw(st.booleans()):
        options += ["--crop", str(draw(st.integers(1, 24))), str(draw(st.integers(1, 24)))]
    if draw(st.integers(0, 3)) == 0:
        options += ["--scale", str(draw(st.sampled_from([0.5, 2.0, 0.05])))]
    if draw(st.integers(0, 3)) == 0:         # now and then fewer than the masks hold: refused
        options += ["--classes", str(folder.classes + draw(st.sampled_from([0, 0, 1, -1])))]
    return folder, options


def tinyseg(*argv) -> subprocess.CompletedProcess:
    """Run `python -m tinyseg ARGV` as a user would, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "tinyseg", *map(str, argv)], capture_output=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, timeout=600)


def check_refusal(result, command: str, folder) -> None:
    """A refusal: exit 1, its first line 'tinyseg COMMAND: error:', naming a file or an option."""
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 1, f"exit {result.returncode}:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    first = err.strip().splitlines()[0]
    assert first.startswith(f"tinyseg {command}: error:"), err
    assert str(folder.root) in err or "--" in err, f"the error names no file and no option:\n{err}"
    assert len(err.strip().splitlines()) <= 23, err                 # one line, or one DataError's list


def refusal_kind(result) -> str:
    """The gist of a refusal, for the statistics (--hypothesis-show-statistics): its first problem."""
    lines = result.stderr.decode("utf-8", "backslashreplace").strip().splitlines()
    line = lines[1] if len(lines) > 1 else lines[0]
    what = line.split(": ")[-1] if ": " in line else line
    return " ".join(what.split()[:6])


def check_run(folder, options, out: Path) -> None:
    """The property: train (then eval and predict) succeeds with correct outputs, or refuses in a line."""
    result = tinyseg("train", "--data", folder.root, "--out", out, *options)
    if result.returncode != 0:
        check_refusal(result, "train", folder)
        event("train refused: " + refusal_kind(result))
        return
    event("trained, evaluated and predicted")
    written = check_training_outputs(result, out)
    check_read_as_stored(folder, written)
    check_eval(folder, out)
    check_predict(folder, out, written)


def check_training_outputs(result, out: Path) -> dict:
    """Every file loads; the files the last line names exist. Returns the checkpoint's meta."""
    from tinyseg.checkpoint import load_checkpoint
    assert unreadable_files(out) == []
    last = result.stdout.decode("utf-8", "backslashreplace").strip().splitlines()[-1]
    assert last.startswith("wrote "), last
    for name in last.split(": ", 1)[1].split(", "):
        assert (out / name).is_file(), f"the run says it wrote {name}, but it is not in {out}"
    _, meta = load_checkpoint(str(out / "best.npz"))
    assert np.isfinite(meta["history"][-1]["val_loss"])
    return meta


def check_read_as_stored(folder, meta: dict) -> None:
    """The dataset train read gives each mask's labels as stored and each image as a reference reader."""
    from tinyseg.data import load_folder
    from tinyseg.data.mask_labels import MaskLabels
    from tinyseg.data.images import resize_mask
    scale = meta["train_config"]["scale"]
    dataset = load_folder(folder.root, classes=meta["class_names"], scale=scale, split=False,
                          mask_labels=MaskLabels.from_json(meta.get("mask_labels")))
    by_stem = {Path(image).stem: index for index, (image, _) in enumerate(dataset.paths)}
    assert sorted(by_stem) == sorted(folder.images)
    for stem, index in by_stem.items():
        image, mask = dataset[index]
        expected = folder.labels[stem]
        if scale != 1:
            expected = resize_mask(expected, mask.shape)
        assert np.array_equal(mask, expected), stem
        if scale == 1:
            reference = folder.images[stem][1]
            reference = np.repeat(reference, image.shape[0] // reference.shape[0], axis=0)
            np.testing.assert_array_equal(image, reference, err_msg=stem)


def check_eval(folder, out: Path) -> None:
    result = tinyseg("eval", "--checkpoint", out / "best.npz", "--data", folder.root)
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 0, err
    assert f"{len(folder.images)} images" in result.stdout.decode(), result.stdout


def check_predict(folder, out: Path, meta: dict) -> None:
    """One mask per input, at the input's own size, holding classes of the model."""
    from PIL import Image
    from tinyseg.predict import output_stems
    inputs = [path for path, _ in folder.images.values()]
    result = tinyseg("predict", "--checkpoint", out / "best.npz", *inputs, "--out", out / "masks")
    assert result.returncode == 0, result.stderr.decode("utf-8", "backslashreplace")
    assert unreadable_files(out / "masks") == []
    for (path, image), stem in zip(folder.images.values(), output_stems(inputs)):
        with Image.open(out / "masks" / f"{stem}_mask.png") as mask:
            labels = np.asarray(mask)
        assert labels.shape == image.shape[1:], stem
        assert labels.max() < len(meta["class_names"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_folder_trains_validates_and_predicts_or_is_refused_in_a_line(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("fuzz")
    folder, options = data.draw(runs(base))
    check_run(folder, options, base / "run")
    assert all(image is REFUSED or image.dtype == np.float32 for _, image in folder.images.values())


# ----------------------------------------------------------------- cases the fuzz found, kept
def folder_of(root: Path, pictures: dict, masks: dict, classes: int):
    """A UserFolder of 8-bit RGB PNG pictures {stem: (H, W, 3) uint8} and grey PNG masks {stem: (H, W)}."""
    from PIL import Image
    from strategies import UserFolder
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images = {}
    for stem, picture in pictures.items():
        Image.fromarray(picture).save(root / "images" / f"{stem}.png")
        Image.fromarray(masks[stem].astype(np.uint8)).save(root / "masks" / f"{stem}.png")
        images[stem] = (root / "images" / f"{stem}.png", picture.transpose(2, 0, 1) / np.float32(255))
    return UserFolder(root, images, {stem: mask.astype(np.int64) for stem, mask in masks.items()},
                      None, [], classes)


def test_found_a_scale_that_leaves_the_training_masks_no_label(tmp_path):
    """--scale 0.5 turns a 1x2 mask [1, 255] into [255]: the refusal must name --scale, not blame the masks."""
    folder = folder_of(tmp_path / "data", {"a b0": np.zeros((1, 5, 3), np.uint8),
                                           "a b1": np.zeros((1, 2, 3), np.uint8)},
                       {"a b0": np.array([[255, 1, 1, 0, 0]]), "a b1": np.array([[1, 255]])}, 2)
    options = ["--epochs", "1", "--no-progress", "--model", "fcn", "--width", "4", "--depth", "1",
               "--val-count", "1", "--scale", "0.5"]
    result = tinyseg("train", "--data", folder.root, "--out", tmp_path / "run", *options)
    check_refusal(result, "train", folder)
    assert "--scale" in result.stderr.decode()
