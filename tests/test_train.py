"""Training end to end on tiny data: resume equality, NaN stop, checkpoints, the CLI."""

import json
import os

import numpy as np
import pytest

import tinyseg.train as train_module
from tinyseg import Tensor
from tinyseg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyseg.cli import main
from tinyseg.evaluate import evaluate
from tinyseg.predictor import Predictor
from tinyseg.run_files import load_model
from tinyseg.train import TrainConfig, TrainingError, fit


def tiny_config(out, model="unet", epochs=2, **changes) -> TrainConfig:
    config = TrainConfig(model=model, epochs=epochs, batch_size=4, size=24, train_count=8,
                         val_count=4, base_channels=4, depth=2, width=4, window=5,
                         windows_per_image=16, out=str(out), seed=3)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def quiet(*args, **kwargs):
    pass


def poison_loss_at_call(monkeypatch, bad_call: int) -> None:
    """Make the `bad_call`-th training loss (counted from 1) NaN."""
    real_loss = train_module.loss_and_gradients
    calls = []

    def poisoned(model, images, masks, config, rng, criterion):
        calls.append(1)
        loss = real_loss(model, images, masks, config, rng, criterion)
        return loss * float("nan") if len(calls) == bad_call else loss

    monkeypatch.setattr(train_module, "loss_and_gradients", poisoned)


def weights(path) -> dict:
    arrays, _ = load_checkpoint(str(path))
    return arrays


@pytest.mark.parametrize("model", ["unet", "naive", "fcn"])
def test_resumed_run_ends_with_exactly_the_same_weights(tmp_path, model):
    fit(tiny_config(tmp_path / "straight", model, epochs=3), show_progress=False, log=quiet)
    fit(tiny_config(tmp_path / "interrupted", model, epochs=1), show_progress=False, log=quiet)
    fit(tiny_config(tmp_path / "interrupted", model, epochs=3), resume=True, show_progress=False, log=quiet)
    straight = weights(tmp_path / "straight" / "last.npz")
    resumed = weights(tmp_path / "interrupted" / "last.npz")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    history = json.loads((tmp_path / "interrupted" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_outputs_of_a_run(tmp_path):
    metrics = fit(tiny_config(tmp_path), show_progress=False, log=quiet)
    for name in ["last.npz", "best.npz", "history.json", "history.csv", "predictions.png"]:
        assert (tmp_path / name).is_file(), name
    assert 0.0 <= metrics["mean_iou"] <= 1.0
    _, meta = load_checkpoint(str(tmp_path / "last.npz"))
    assert meta["epoch"] == 2
    assert meta["class_names"] == ["background", "disc", "square", "triangle"]
    assert meta["model_config"]["name"] == "unet"


def test_nan_loss_stops_with_the_step_and_saves_nothing_broken(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, epochs=1)
    fit(config, show_progress=False, log=quiet)
    before = weights(tmp_path / "last.npz")
    poison_loss_at_call(monkeypatch, 2)
    config.epochs = 2
    with pytest.raises(TrainingError, match="nan at step 2 of epoch 2"):
        fit(config, resume=True, show_progress=False, log=quiet)
    after = weights(tmp_path / "last.npz")          # still the good epoch-1 checkpoint
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"a": np.arange(3)}, {"epoch": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        save_checkpoint(str(path), {"a": np.arange(5)}, {"epoch": 2})
    arrays, meta = load_checkpoint(str(path))          # the old file, whole
    assert meta["epoch"] == 1 and arrays["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]   # no temporary left behind


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    fit(tiny_config(tmp_path / "run", epochs=1), show_progress=False, log=quiet)
    data = (tmp_path / "run" / "last.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "foreign.npz", weight=np.zeros(3))
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    for name in ["truncated", "garbage", "foreign", "flipped", "missing"]:
        with pytest.raises(CheckpointError, match=name):
            load_model(str(tmp_path / f"{name}.npz"))


def test_checkpoint_of_another_shape_is_refused_whole(tmp_path):
    fit(tiny_config(tmp_path / "run", epochs=1), show_progress=False, log=quiet)
    arrays, meta = load_checkpoint(str(tmp_path / "run" / "last.npz"))
    meta["model_config"]["base_channels"] = 8         # the weights no longer fit
    save_checkpoint(str(tmp_path / "bad.npz"), arrays, {k: v for k, v in meta.items()
                                                         if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match="does not fit its model"):
        load_model(str(tmp_path / "bad.npz"))


def test_resume_with_other_settings_is_refused(tmp_path):
    fit(tiny_config(tmp_path, epochs=1), show_progress=False, log=quiet)
    with pytest.raises(ValueError, match=r"--batch-size \(stored 4, given 2\)"):
        fit(tiny_config(tmp_path, epochs=2, batch_size=2), resume=True, show_progress=False, log=quiet)


def test_cli_train_eval_predict(tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "run"
    code = main(["train", "--epochs", "1", "--size", "24", "--train-count", "8", "--val-count", "4",
                 "--base-channels", "4", "--depth", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "mean IoU" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(out / "best.npz")]) == 0
    assert "pixel accuracy" in capsys.readouterr().out
    picture = np.random.default_rng(0).integers(0, 255, (37, 50, 3), dtype=np.uint8)  # odd size
    Image.fromarray(picture).save(tmp_path / "photo.png")
    Image.fromarray(picture[..., 0]).save(tmp_path / "grey.png")
    assert main(["predict", "--checkpoint", str(out / "best.npz"), str(tmp_path / "photo.png"),
                 str(tmp_path / "grey.png"), "--out", str(tmp_path / "pred")]) == 0
    with Image.open(tmp_path / "pred" / "photo_mask.png") as mask:
        assert mask.size == (50, 37) and mask.mode == "P"
        assert np.asarray(mask).max() < 4
    with Image.open(tmp_path / "pred" / "photo_overlay.png") as over:
        assert over.size == (50, 37)


def test_cli_reports_bad_checkpoint_without_traceback(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"junk")
    assert main(["eval", "--checkpoint", str(tmp_path / "x.npz")]) == 1
    assert "is not a tinyseg checkpoint" in capsys.readouterr().err


def test_cli_cuda_without_gpu_says_how_to_install(tmp_path, capsys):
    import tinyseg
    if tinyseg.cuda_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--device", "cuda", "--out", str(tmp_path)]) == 1
    assert 'pip install "tinyseg[gpu]"' in capsys.readouterr().err


def write_split_folder(root) -> None:
    """train/ and val/, each 4 grey 20 x 20 images and masks of classes 0, 1, 2 and ignored pixels."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ["train", "val"]:
        for kind in ["images", "masks"]:
            os.makedirs(root / split / kind)
        for i in range(4):
            mask = np.zeros((20, 20), np.uint8)
            mask[5:12, 4:15] = 1 + i % 2
            mask[0, :] = 255
            image = (rng.random((20, 20)) * 60 + mask * 50).astype(np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")


def test_train_on_a_folder_of_files(tmp_path):
    write_split_folder(tmp_path / "data")
    config = tiny_config(tmp_path / "run", data=str(tmp_path / "data"), epochs=1, train_count=None,
                         val_count=None)
    metrics = fit(config, show_progress=False, log=quiet)
    assert metrics["class_names"] == ["class0", "class1", "class2"] or len(metrics["class_names"]) == 3
    model, _ = load_model(str(tmp_path / "run" / "last.npz"))
    assert model.config["in_channels"] == 1 and model.config["num_classes"] == 3
    labels = model.predict(Tensor(np.zeros((1, 1, 20, 20), np.float32)))
    assert labels.shape == (1, 20, 20)


def test_nan_found_late_still_names_its_own_step(tmp_path, monkeypatch):
    """With --check-every 4 the loss is read every 4 steps; the message names the NaN's step."""
    poison_loss_at_call(monkeypatch, 2)
    config = tiny_config(tmp_path, epochs=1, batch_size=2, check_every=4)   # 4 steps an epoch
    with pytest.raises(TrainingError, match="nan at step 2 of epoch 1"):
        fit(config, show_progress=False, log=quiet)
    assert not (tmp_path / "last.npz").exists()


def test_a_loaded_model_predicts_in_eval_mode(tmp_path):
    fit(tiny_config(tmp_path, epochs=1), show_progress=False, log=quiet)
    model, _ = load_model(str(tmp_path / "last.npz"))
    assert model.training is False


def test_the_training_loop_asks_the_model_for_its_loss_and_inference_form(tmp_path):
    """A model the loop has never heard of trains and is scored through its two hooks."""
    from tinyseg.data import DataLoader, shapes_dataset
    from tinyseg.models import FCN
    from tinyseg.optim import Adam
    calls = []

    class Recorded(FCN):
        name = "recorded"

        def training_loss(self, images, masks, criterion, rng):
            calls.append(("loss", images.shape))
            return super().training_loss(images, masks, criterion, rng)

        def inference_model(self):
            calls.append(("inference",))
            return self

    data = shapes_dataset("train", count=4, size=16, seed=0)
    model = Recorded(3, 4, width=4, depth=1)
    config = TrainConfig(batch_size=2, epochs=1)
    loss, steps = train_module.train_one_epoch(model, DataLoader(data, batch_size=2), Adam(model.parameters()),
                                               config, 0, np.random.default_rng(0), show_progress=False)
    evaluate(Predictor(model), data)
    assert np.isfinite(loss)
    assert calls == [("loss", (2, 3, 16, 16))] * 2 + [("inference",)]


CHECKPOINT_META = {"format", "version", "model_config", "train_config", "epoch", "class_names", "rng_state",
                   "best_miou", "history", "normalization", "lr_scheduler", "class_weights", "mask_labels"}


def test_a_training_run_loads_its_checkpoint_and_gives_it_back_unchanged(tmp_path):
    """state_dict() is the checkpoint file, and load_state_dict(state_dict()) changes nothing."""
    from tinyseg.train_config import ready_to_train
    from tinyseg.training_run import TrainingRun
    config = tiny_config(tmp_path, epochs=2, schedule="cosine", class_weights="auto")
    fit(config, show_progress=False, log=quiet)
    arrays, meta = load_checkpoint(str(tmp_path / "last.npz"))
    assert set(meta) == CHECKPOINT_META
    config = ready_to_train(config)
    run = TrainingRun(config, train_module.build_datasets(config)[0])
    run.load_state_dict(arrays, meta, log=quiet)
    again, again_meta = run.state_dict()
    assert again.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(again[name], arrays[name], err_msg=name)
    assert json.loads(json.dumps(again_meta)) == {k: v for k, v in meta.items() if k not in ("format", "version")}
    assert (run.epoch, run.best_miou, len(run.history)) == (2, meta["best_miou"], 2)


@pytest.mark.parametrize("data", ["shapes", "folder"])
def test_fit_leaves_the_callers_config_as_it_was(tmp_path, data):
    write_split_folder(tmp_path / "folder")
    counts = dict(train_count=8, val_count=None) if data == "shapes" else dict(train_count=None, val_count=None)
    config = tiny_config(tmp_path / "run", epochs=1, augment=True, **counts,
                         data="shapes" if data == "shapes" else str(tmp_path / "folder"))
    before = dict(vars(config))
    fit(config, show_progress=False, log=quiet)
    assert vars(config) == before                          # augment still True, the counts not filled in
    _, meta = load_checkpoint(str(tmp_path / "run" / "last.npz"))
    assert meta["train_config"]["augment"] == "flip"       # the run's own copy is the one stored
    assert meta["train_config"]["val_count"] == (64 if data == "shapes" else None)
