"""`tinyseg train | eval | tour` with real users' mistakes: one line, exit 1, no work lost.

Each test runs the command line in-process (cli.main) on a tiny configuration
and reads what it printed on stderr.
"""

import json
import os

import numpy as np
import pytest

import tinyseg.train as train_module
from tinyseg import optim
from tinyseg.checkpoint import load_checkpoint
from tinyseg.cli import main
from tinyseg.data import SegmentationDataset, shapes_dataset
from tinyseg.evaluate import evaluate
from tinyseg.predictor import Predictor
from tinyseg.run_files import load_model
from tinyseg.train import TrainConfig, TrainingError, fit

TINY = ["--size", "16", "--train-count", "4", "--val-count", "2", "--base-channels", "2",
        "--depth", "1", "--batch-size", "2", "--no-progress"]


def train(out, *extra) -> int:
    return main(["train", *TINY, "--epochs", "1", "--out", str(out), *extra])


def error_line(capsys, command="train") -> str:
    """The one line the command wrote on stderr (and nothing else there: no traceback)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"tinyseg {command}: error: "), err
    return err


def quiet(*args, **kwargs):
    pass


# ----------------------------------------------------------------- options checked before any work
@pytest.mark.parametrize("option, value", [
    ("--lr", "nan"), ("--lr", "0"), ("--lr", "-1"), ("--lr", "inf"), ("--momentum", "nan"),
    ("--momentum", "1"), ("--weight-decay", "-0.1"), ("--batch-size", "0"), ("--epochs", "0"),
    ("--epochs", "-2"), ("--size", "0"), ("--train-count", "0"), ("--val-count", "0"),
    ("--windows-per-image", "0"), ("--time-budget", "nan"), ("--seed", "-1"), ("--check-every", "0"),
    ("--width", "0"), ("--window", "4"), ("--classes", "1"), ("--scale", "0"),
])
def test_a_senseless_number_is_refused_naming_its_option(tmp_path, capsys, option, value):
    assert train(tmp_path / "run", option, value) == 1
    assert f"error: {option} must be" in error_line(capsys)
    assert not (tmp_path / "run").exists()                   # refused before any work


def test_the_lr_message_says_what_a_good_value_is(tmp_path, capsys):
    assert train(tmp_path / "run", "--lr", "nan") == 1
    assert error_line(capsys).endswith("--lr must be a positive finite number, got nan")


def test_crop_larger_than_the_images_and_train_count_on_a_folder(tmp_path, capsys):
    assert train(tmp_path / "run", "--crop", "8", "32") == 1
    assert "--crop 8 32 is larger than the 16x16 images" in error_line(capsys)
    (tmp_path / "folder").mkdir()
    assert main(["train", "--data", str(tmp_path / "folder"), "--train-count", "3",
                 "--out", str(tmp_path / "run")]) == 1
    assert "--train-count applies to the built-in shapes data" in error_line(capsys)


@pytest.mark.parametrize("budget", ["0", "-5", "nan"])
def test_tour_refuses_a_budget_that_is_not_positive(tmp_path, capsys, budget):
    assert main(["tour", "--budget", budget, "--out", str(tmp_path), "--no-progress"]) == 1
    assert "--budget must be a positive number of seconds" in error_line(capsys, "tour")
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------- paths
def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("notes")
    assert train(tmp_path / "taken") == 1
    assert f"--out '{tmp_path / 'taken'}' is a file, not a folder" in error_line(capsys)


def test_eval_checkpoint_missing_a_folder_or_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("hello")
    for path, what in [(tmp_path / "missing.npz", "does not exist"), (tmp_path, "is a folder"),
                       (tmp_path / "notes.npz", "not a tinyseg checkpoint")]:
        assert main(["eval", "--checkpoint", str(path)]) == 1
        line = error_line(capsys, "eval")
        assert str(path) in line and what in line, line


def test_data_that_is_a_file(tmp_path, capsys):
    (tmp_path / "data.txt").write_text("x")
    assert train(tmp_path / "run", "--data", str(tmp_path / "data.txt")) == 1
    assert "(a file, not a folder)" in error_line(capsys)


# ----------------------------------------------------------------- a run is never replaced by accident
def test_training_into_a_folder_with_a_run_is_refused_until_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    best = (out / "best.npz").read_bytes()
    capsys.readouterr()
    assert train(out, "--seed", "5") == 1
    line = error_line(capsys)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert (out / "best.npz").read_bytes() == best            # untouched
    assert train(out, "--seed", "5", "--overwrite") == 0
    assert load_checkpoint(str(out / "best.npz"))[1]["train_config"]["seed"] == 5


def test_resume_applies_a_new_learning_rate_and_refuses_a_new_size(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--lr", "0.001", "--out", str(out), "--resume"]) == 0
    assert "lr 0.002 -> 0.001" in capsys.readouterr().out
    arrays, meta = load_checkpoint(str(out / "last.npz"))
    assert meta["epoch"] == 2 and float(arrays["optim.lr"]) == 0.001
    assert meta["train_config"]["lr"] == 0.001
    args = [a if a != "16" else "24" for a in TINY]            # --size 24
    assert main(["train", *args, "--epochs", "3", "--out", str(out), "--resume"]) == 1
    assert "--size (stored 16, given 24)" in error_line(capsys)


def test_resume_without_a_run_says_there_is_nothing_to_resume(tmp_path, capsys):
    assert train(tmp_path / "run", "--resume") == 1
    assert "nothing to resume" in error_line(capsys)


def test_resume_with_no_epochs_left_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    assert train(out, "--resume") == 0
    assert "nothing left to train" in capsys.readouterr().out


# ----------------------------------------------------------------- degenerate data
def half_unlabelled(count=4, size=12, every=2):
    """Shapes whose masks 0, every, 2 * every ... are all 255 (the ignore label): nothing to learn."""
    data = shapes_dataset("train", count=count, size=size, seed=1)
    images = np.stack([data[i][0] for i in range(count)])
    masks = np.stack([data[i][1] for i in range(count)])
    masks[::every] = 255
    return SegmentationDataset(images, masks, data.class_names)


@pytest.mark.parametrize("model", ["naive", "fcn", "unet"])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_batch_without_a_labelled_pixel_is_skipped(tmp_path, monkeypatch, model, batch_size):
    data = half_unlabelled()
    monkeypatch.setattr(train_module, "build_datasets", lambda config, *options: (data, data))
    from tinyseg.models import sliding_window
    real_sample = sliding_window.sample_windows

    def sample_only_labelled(images, masks, *args, **kwargs):
        assert (np.asarray(masks) != 255).any(), "sample_windows got a batch with no label"
        return real_sample(images, masks, *args, **kwargs)

    monkeypatch.setattr(sliding_window, "sample_windows", sample_only_labelled)
    config = TrainConfig(model=model, epochs=1, batch_size=batch_size, base_channels=2, depth=1,
                         width=2, window=5, windows_per_image=4, augment=False, out=str(tmp_path))
    fit(config, show_progress=False, log=quiet)
    history = json.loads((tmp_path / "history.json").read_text())
    assert np.isfinite(history[0]["train_loss"])


def test_masks_without_any_label_are_refused_before_training(tmp_path, capsys, monkeypatch):
    data = half_unlabelled(every=1)
    monkeypatch.setattr(train_module, "build_datasets", lambda config, *options: (data, data))
    assert train(tmp_path / "run") == 1
    assert "no training mask labels any pixel" in error_line(capsys)


# ----------------------------------------------------------------- training that fails safely
def test_weights_that_diverge_on_an_epochs_last_step_are_never_saved(tmp_path, monkeypatch):
    """The loss of the last step is computed before its update: only the weights show it."""
    config = TrainConfig(epochs=1, batch_size=2, size=16, train_count=4, val_count=2,
                         base_channels=2, depth=1, out=str(tmp_path))
    fit(config, show_progress=False, log=quiet)
    before = (tmp_path / "last.npz").read_bytes(), (tmp_path / "best.npz").read_bytes()
    real_step, calls = optim.Adam.step, []

    def step_to_infinity(self):
        real_step(self)
        calls.append(1)
        if len(calls) == 2:                                     # step 2 of 2 in epoch 2
            self.params[0].data[...] = np.inf

    monkeypatch.setattr(optim.Adam, "step", step_to_infinity)
    config.epochs = 2
    with pytest.raises(TrainingError, match="weights became inf or nan by step 2 of epoch 2"):
        fit(config, resume=True, show_progress=False, log=quiet)
    assert ((tmp_path / "last.npz").read_bytes(), (tmp_path / "best.npz").read_bytes()) == before


def test_a_checkpoint_of_non_finite_weights_is_refused(tmp_path):
    from tinyseg.training_run import TrainingRun
    data = shapes_dataset("train", count=2, size=8, num_classes=2, seed=0)
    run = TrainingRun(TrainConfig(model="fcn", width=2, depth=1, out=str(tmp_path)), data)
    run.model.head.bias.data[0] = np.nan
    with pytest.raises(TrainingError, match="refusing to write .*head.bias"):
        run.save(str(tmp_path / "x.npz"))
    assert not any(tmp_path.iterdir())


def test_a_cut_history_and_a_killed_write_do_not_block_a_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    text = (out / "history.json").read_text()
    (out / "history.json").write_text(text[: len(text) // 2])          # cut short
    (out / ".tmp-abc123last.npz").write_bytes(b"half a checkpoint")    # a write killed midway
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "history.json is unreadable" in printed and "removed 1 unfinished file" in printed
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]


# ----------------------------------------------------------------- normalisation and eval
def test_inputs_are_normalised_with_the_training_images_statistics(tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, size=16, train_count=4, val_count=2,
                         base_channels=2, depth=1, out=str(tmp_path))
    fit(config, show_progress=False, log=quiet)
    _, meta = load_checkpoint(str(tmp_path / "last.npz"))
    train_set, val_set = train_module.build_datasets(config)
    images = np.stack([train_set[i][0] for i in range(len(train_set))])
    np.testing.assert_allclose(meta["normalization"]["mean"], images.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(meta["normalization"]["std"], images.std(axis=(0, 2, 3)), rtol=1e-4)
    model, _ = load_model(str(tmp_path / "last.npz"))
    metrics = evaluate(Predictor(model, meta["normalization"]), val_set)
    assert round(metrics["mean_iou"], 6) == meta["history"][-1]["val_miou"]


def write_folder(root, count, labels=(0, 1), size=12, seed=0):
    """A folder of images/ and masks/ whose masks use only `labels`."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        mask = rng.choice(np.array(labels, np.uint8), size=(size, size))
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")


def test_eval_scores_every_image_of_a_folder_with_the_checkpoints_classes(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0                                    # 4 classes, 3 channels
    write_folder(tmp_path / "photos", count=5, labels=(0, 1))  # lacks classes 2 and 3
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.npz"), "--data", str(tmp_path / "photos")]) == 0
    printed = capsys.readouterr().out
    assert "5 images" in printed and "triangle" in printed


def test_a_folder_run_with_val_count_scale_and_crop(tmp_path, capsys):
    write_folder(tmp_path / "photos", count=6, size=12)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "photos"), "--val-count", "2", "--scale", "0.5",
                 "--crop", "4", "4", "--base-channels", "2", "--depth", "1", "--batch-size", "2",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    assert "4 training / 2 validation images" in capsys.readouterr().out
    _, meta = load_checkpoint(str(out / "last.npz"))
    config = TrainConfig(**meta["train_config"])
    assert config.crop == [4, 4] and config.scale == 0.5 and config.val_count == 2
    train_set, val_set = train_module.build_datasets(config)
    images, masks = next(iter(train_module.make_loader(train_set, config)))
    assert images.shape == (2, 3, 4, 4) and masks.shape == (2, 4, 4)
    assert val_set[0][0].shape == (3, 6, 6)                   # 12 x 12 read at half the size


def test_overwrite_keeps_the_earlier_run_when_the_new_data_is_unusable(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    best = (out / "best.npz").read_bytes()
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(out), "--overwrite",
                 "--no-progress"]) == 1
    assert (out / "best.npz").read_bytes() == best
