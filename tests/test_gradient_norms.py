"""Gradient flow: each layer's gradient norm, grouped by stage, averaged over an epoch, in the history."""

import json

import numpy as np
import pytest

import tinyseg.functional as F
from tinyseg import backend
from tinyseg.gradient_norms import GradientNorms, parameter_groups
from tinyseg.models import FCN, SlidingWindow, UNet
from tinyseg.run_files import write_history
from tinyseg.tensor import Tensor
from tinyseg.train import TrainConfig, fit
from tinyseg.visualize import history_columns, plot_history


def test_parameters_are_grouped_by_the_stage_that_holds_them():
    model = UNet(3, 4, base_channels=2, depth=2, batch_norm=True)
    unet = parameter_groups(model)
    assert list(unet) == ["encoder.0", "encoder.1", "bottleneck", "upsample.0", "upsample.1",
                          "decoder.0", "decoder.1", "head"]
    assert len(unet["encoder.0"]) == 6          # 2 convolution weights (no bias), 2 x batch norm's 2
    assert list(parameter_groups(FCN(3, 4, width=2, depth=2))) == ["features.0", "features.2", "head"]
    naive = parameter_groups(SlidingWindow(3, 4, window=5, width=2, depth=1))
    assert list(naive) == ["features.0", "classifier"]
    grouped = [id(p) for group in unet.values() for p in group]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())      # each once


def test_the_epoch_mean_is_the_mean_over_steps_of_each_layers_norm(device):
    model = FCN(1, 3, width=2, depth=1, seed=0).to(device)
    norms = GradientNorms(model)
    expected = []
    for step in range(3):
        model.zero_grad()
        x = Tensor(np.random.default_rng(step).random((2, 1, 5, 5)), dtype=np.float32, device=device)
        target = backend.to_device(np.random.default_rng(step).integers(0, 3, (2, 5, 5)), device)
        F.cross_entropy(model(x), target).backward()
        norms.add()
        expected.append([np.sqrt(sum(float((backend.to_numpy(p.grad).astype(np.float64) ** 2).sum())
                                     for p in group)) for group in parameter_groups(model).values()])
    means = norms.epoch_means()
    assert list(means) == ["features.0", "head"]
    np.testing.assert_allclose(list(means.values()), np.mean(expected, axis=0), rtol=1e-3)
    assert norms.steps == 0 and norms.epoch_means() == {"features.0": None, "head": None}


def test_training_records_them_in_history_and_draws_them(tmp_path):
    config = TrainConfig(model="unet", epochs=2, batch_size=4, size=16, train_count=8, val_count=4,
                         base_channels=2, depth=1, out=str(tmp_path), seed=3)
    fit(config, show_progress=False, log=lambda *args: None)
    history = json.loads((tmp_path / "history.json").read_text())
    columns = ["grad_norm/encoder.0", "grad_norm/bottleneck", "grad_norm/upsample.0",
               "grad_norm/decoder.0", "grad_norm/head"]
    for row in history:
        assert all(row[name] > 0 for name in columns), row
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert header[-5:] == columns
    assert list(history_columns(history))[-5:] == columns


def test_older_rows_without_norms_still_write_one_table(tmp_path):
    rows = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4, "grad_norm/head": 0.1}]
    write_history(str(tmp_path), rows)
    assert (tmp_path / "history.csv").read_text().splitlines() == [
        "epoch,train_loss,grad_norm/head", "1,0.5,", "2,0.4,0.1"]
    pytest.importorskip("matplotlib")
    assert plot_history(tmp_path / "history.png", rows) is True
