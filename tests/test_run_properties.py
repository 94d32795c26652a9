"""The properties a run keeps whatever it is given (issue 20), each checked where it is owned.

- A run never ends as a success with a broken model: a non-finite validation
  loss stops it naming the epoch, best.npz only comes from a finite
  validation, and the files it says it wrote exist.
- A setting that cannot train is refused before the first epoch, naming the
  option (batch norm with a batch of one tiny image), or the one short batch
  is left out and the run says so.
- --time-budget bounds the whole command: the data check is inside it, and
  training stops within it plus one validation pass, saying what it skipped.
- Memory is bounded whatever the image size: labelling an image holds one
  tile's activations, not the image's.
- predict applies the --scale the model was trained with.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.checkpoint import save_checkpoint
from tinyseg.cli import main
from tinyseg.data.images import resize_image, resize_mask, scaled_size
from tinyseg.models import UNet
from tinyseg.predictor import Predictor
from tinyseg.train import TrainConfig, TrainingError, fit

Image = pytest.importorskip("PIL.Image")
TINY = dict(size=16, train_count=8, val_count=2, base_channels=2, depth=1, batch_size=4)


def quiet(*args, **kwargs):
    pass


# ----------------------------------------------------------------- no success with a broken model
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_a_validation_loss_that_overflows_stops_the_run_and_no_best_is_written(tmp_path):
    """--lr 1e30 with one step an epoch: the weights stay finite, the logits overflow."""
    config = TrainConfig(**{**TINY, "train_count": 4}, epochs=2, lr=1e30, out=str(tmp_path))
    with pytest.raises(TrainingError, match="validation loss became nan after epoch 1.*--lr"):
        fit(config, show_progress=False, log=quiet)
    assert not (tmp_path / "best.npz").exists() and not (tmp_path / "last.npz").exists()


def test_the_run_lists_only_the_files_it_wrote(tmp_path, monkeypatch):
    import tinyseg.visualize
    lines = []
    monkeypatch.setattr(tinyseg.visualize, "plot_history", lambda path, history: False)
    fit(TrainConfig(**TINY, epochs=1, out=str(tmp_path)), show_progress=False, log=lines.append)
    wrote = lines[-1].split(": ", 1)[1].split(", ")
    assert "history.png" not in wrote                       # not drawn (no matplotlib, say)
    assert all((tmp_path / name).is_file() for name in wrote)


# ----------------------------------------------------------------- settings that cannot train
def test_batch_norm_with_a_batch_of_one_tiny_image_is_refused_naming_the_options(tmp_path, capsys):
    code = main(["train", "--size", "8", "--train-count", "3", "--val-count", "1", "--base-channels",
                 "2", "--depth", "3", "--batch-size", "1", "--epochs", "1", "--out", str(tmp_path),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "--batch-size" in err and "--no-batch-norm" in err


def test_a_last_batch_of_one_tiny_image_is_left_out_and_said(tmp_path):
    lines = []
    config = TrainConfig(size=8, train_count=5, val_count=2, base_channels=2, depth=3, batch_size=2,
                         epochs=1, out=str(tmp_path))
    fit(config, show_progress=False, log=lines.append)           # failed mid-epoch before
    assert any("last batch" in line and "left out" in line for line in lines)


def test_graph_of_a_size_batch_norm_cannot_take_is_refused_naming_size(tmp_path, capsys):
    assert main(["graph", "--size", "8", "8", "--out", str(tmp_path / "g.dot")]) == 1
    err = capsys.readouterr().err
    assert "--size 8 8" in err and "Traceback" not in err


# ----------------------------------------------------------------- the time budget
def test_the_time_budget_bounds_training_plus_one_validation_and_says_what_was_skipped(tmp_path):
    lines = []
    started = time.perf_counter()
    config = TrainConfig(**{**TINY, "train_count": 64}, epochs=50, time_budget=1.0, out=str(tmp_path))
    fit(config, show_progress=False, log=lines.append)
    assert time.perf_counter() - started < 1.0 + 5.0              # one validation pass of 2 images
    assert any("time budget of 1 s spent" in line and "skipped" in line for line in lines)
    history = json.loads((tmp_path / "history.json").read_text())
    assert 1 <= len(history) < 50


def test_a_budget_spent_while_checking_the_data_names_the_option(tmp_path, capsys):
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(30):
        Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(folder / "images" / f"{i}.png")
        Image.fromarray((np.arange(300 * 300) % 2).reshape(300, 300).astype(np.uint8)).save(
            folder / "masks" / f"{i}.png")
    code = main(["train", "--data", str(folder), "--time-budget", "0.01", "--out", str(tmp_path / "r"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "time budget" in err and "--time-budget" in err, err


# ----------------------------------------------------------------- memory bounded by the tile
@settings(max_examples=3, deadline=None)
@given(side=st.sampled_from([512, 768]))
def test_labelling_a_large_image_holds_one_tile_not_the_image(side):
    """Extra memory grows with the pixels only by the few bytes a pixel the outputs need."""
    model = UNet(3, 4, base_channels=8, depth=2).eval()
    predictor = Predictor(model, tile_size=128)
    predictor.labels(np.zeros((3, 200, 200), np.float32))      # measures the margin once

    def peak(size: int) -> int:
        image = np.random.default_rng(0).random((3, size, size), dtype=np.float32)
        tracemalloc.start()
        predictor.labels(image)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(256), peak(side)
    per_pixel = (large - small) / (side ** 2 - 256 ** 2)
    assert per_pixel < 40      # normalised + padded copies (24 B) and the labels (8 B); a whole
    # image's activations would be hundreds of bytes a pixel (8 channels x 4 B, many maps)


# ----------------------------------------------------------------- predict applies the training scale
def test_predict_applies_the_scale_the_model_was_trained_with(tmp_path):
    model = UNet(3, 3, base_channels=4, depth=2, seed=1).eval()
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    save_checkpoint(str(tmp_path / "model.npz"), arrays,
                    {"model_config": model.config, "train_config": {"scale": 0.5}})
    photo = np.random.default_rng(2).integers(0, 256, (61, 47, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    assert main(["predict", "--checkpoint", str(tmp_path / "model.npz"), str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "photo_mask.png") as mask:
        labels = np.asarray(mask)
    image = photo.transpose(2, 0, 1).astype(np.float32) / 255
    small = resize_image(image, scaled_size(61, 47, 0.5))                    # as training read it
    expected = resize_mask(Predictor(model).labels(small), (61, 47))        # and back to its size
    assert labels.shape == (61, 47) and np.array_equal(labels, expected)
