"""train's --loss, --schedule, --warmup-epochs, --class-weights and --augment, end to end."""

import json
import math

import numpy as np
import pytest

import tinyseg.train as train_module
from tinyseg.checkpoint import load_checkpoint
from tinyseg.cli import main
from tinyseg.data import DataLoader, shapes_dataset
from tinyseg.data.augment import augment_pair, example_rng
from tinyseg.train import TrainConfig, fit

OPTIONS = dict(loss="ce+dice", schedule="cosine", warmup_epochs=1, augment="standard",
               class_weights="auto")


def tiny_config(out, epochs=3, **changes) -> TrainConfig:
    config = TrainConfig(epochs=epochs, batch_size=4, size=16, train_count=8, val_count=4,
                         base_channels=4, depth=2, out=str(out), seed=3, **OPTIONS)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def quiet(*args, **kwargs):
    pass


def stop_after_first_epoch(monkeypatch) -> None:
    """Make the run die (as if killed) once epoch 1 is saved."""
    real_write = train_module.write_history

    def write_then_stop(out, history):
        real_write(out, history)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "write_history", write_then_stop)


def test_resume_with_every_option_is_bit_identical(tmp_path, monkeypatch):
    fit(tiny_config(tmp_path / "straight"), show_progress=False, log=quiet)
    with monkeypatch.context() as patch:
        stop_after_first_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            fit(tiny_config(tmp_path / "cut"), show_progress=False, log=quiet)
    fit(tiny_config(tmp_path / "cut"), resume=True, show_progress=False, log=quiet)
    straight, meta = load_checkpoint(str(tmp_path / "straight" / "last.npz"))
    resumed, resumed_meta = load_checkpoint(str(tmp_path / "cut" / "last.npz"))
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    assert resumed_meta["lr_scheduler"] == meta["lr_scheduler"]
    # the weights auto chose, stored: median frequency of the training masks
    train_set = shapes_dataset("train", count=8, size=16, num_classes=4, seed=3)
    counts = train_set.class_pixel_counts()
    frequency = counts / counts.sum()
    np.testing.assert_allclose(meta["class_weights"], np.median(frequency) / frequency)
    # warm-up 1 epoch at lr/2, then cosine over 2 epochs: lr, lr/2 ... (the rate each epoch used)
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    lr = TrainConfig().lr
    expected = [lr / 2, lr, lr * (1 + math.cos(math.pi / 2)) / 2]
    np.testing.assert_allclose([row["lr"] for row in history], expected)


def test_changing_the_loss_or_class_weights_on_resume_is_refused(tmp_path):
    fit(tiny_config(tmp_path, epochs=1, warmup_epochs=0), show_progress=False, log=quiet)
    for change in (dict(loss="ce"), dict(class_weights="1,1,1,1"), dict(focal_gamma=1.0)):
        with pytest.raises(ValueError, match="--" + next(iter(change)).replace("_", "-")):
            fit(tiny_config(tmp_path, epochs=2, warmup_epochs=0, **change), resume=True,
                show_progress=False, log=quiet)


@pytest.mark.parametrize("argv, message", [
    (["--class-weights", "1,2"], "expected 4 comma-separated numbers"),
    (["--class-weights", "1,-2,1,1"], "class 1 must be a positive"),
    (["--warmup-epochs", "2", "--epochs", "2"], "--warmup-epochs"),
    (["--warmup-epochs", "-1"], "--warmup-epochs"),
    (["--loss", "focal", "--focal-gamma", "nan"], "--focal-gamma must be a finite number >= 0, got nan"),
    (["--loss", "focal", "--focal-gamma", "-1"], "--focal-gamma must be a finite number >= 0"),
])
def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys, argv, message):
    code = main(["train", "--out", str(tmp_path), "--train-count", "4", "--val-count", "2",
                 "--size", "16", "--no-progress", *argv])
    error = capsys.readouterr().err
    assert code == 1 and message in error and "Traceback" not in error


def test_typed_class_weights_reach_the_loss_and_the_checkpoint(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--epochs", "1", "--train-count", "4",
                 "--val-count", "2", "--size", "16", "--base-channels", "4", "--depth", "2",
                 "--no-progress", "--class-weights", "1,2,5,1", "--loss", "dice"]) == 0
    out = capsys.readouterr().out
    assert "class weights" in out and "5.0000" in out
    _, meta = load_checkpoint(str(tmp_path / "last.npz"))
    assert meta["class_weights"] == [1.0, 2.0, 5.0, 1.0]
    assert meta["train_config"]["loss"] == "dice"


def test_standard_loader_augments_each_example_with_its_own_generator():
    data = shapes_dataset("train", count=5, size=12, num_classes=3, seed=1)
    loader = DataLoader(data, batch_size=5, shuffle=False, seed=7, augment="standard")
    loader.set_epoch(2)
    images, masks = next(iter(loader))
    for index in range(5):
        image, mask = augment_pair(*data[index], example_rng(7, 2, index), "standard")
        np.testing.assert_array_equal(images[index], image)
        np.testing.assert_array_equal(masks[index], mask)


def test_old_true_false_augment_still_mean_flip_and_none():
    data = shapes_dataset("train", count=4, size=8, num_classes=3, seed=1)
    assert DataLoader(data, augment=True).augment == "flip"
    assert DataLoader(data, augment=False).augment == "none"
    with pytest.raises(ValueError, match="augment"):
        DataLoader(data, augment="rotate")


def test_augment_command_writes_a_picture(tmp_path, capsys):
    path = tmp_path / "aug.png"
    assert main(["augment", "--out", str(path), "--count", "2", "--epochs", "1", "--size", "16"]) == 0
    assert path.stat().st_size > 0


def test_focal_loss_trains_with_its_gamma(tmp_path, monkeypatch):
    from tinyseg import nn
    built = []
    real_make_loss = train_module.make_loss

    def recording_make_loss(*args, **kwargs):
        built.append(real_make_loss(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(train_module, "make_loss", recording_make_loss)
    config = tiny_config(tmp_path, epochs=1, warmup_epochs=0, loss="focal", focal_gamma=0.5)
    metrics = fit(config, show_progress=False, log=quiet)
    assert type(built[0]) is nn.FocalLoss and built[0].gamma == 0.5
    assert np.isfinite(metrics["mean_iou"])
    _, meta = load_checkpoint(str(tmp_path / "last.npz"))
    assert (meta["train_config"]["loss"], meta["train_config"]["focal_gamma"]) == ("focal", 0.5)
