"""The tour and the complexity command, run end to end in a tiny configuration."""

from tinyseg.cli import main
from tinyseg.tour import run_tour


def test_tour_trains_three_models_and_writes_the_comparison(tmp_path):
    lines = []
    result = run_tour(budget=1.5, out=str(tmp_path), sizes=(16, 24), window_sizes=(12, 24),
                      train_count=8, val_count=4, size=16, show_progress=False, log=lines.append)
    assert [row["model"] for row in result["rows"]] == ["sliding window", "FCN", "U-Net"]
    for row in result["rows"]:
        assert row["parameters"] > 0 and 0.0 <= row["miou"] <= 1.0
        assert set(row["ms"]) == {16, 24} and all(ms > 0 for ms in row["ms"].values())
    assert [size for size, *_ in result["window_speedups"]] == [12, 24]
    assert (tmp_path / "tour.png").is_file()
    assert any("speed-up" in line for line in lines)


def test_complexity_command_prints_the_table_and_the_seed_count(capsys):
    assert main(["complexity", "--size", "32", "32"]) == 0
    out = capsys.readouterr().out
    assert "320,000,041" in out
    for model in ["naive", "FCN", "U-Net"]:
        assert model in out


def test_timing_a_model_does_not_change_its_batch_norm_statistics():
    import numpy as np
    from tinyseg.models import UNet
    from tinyseg.tour import inference_ms
    model = UNet(3, 4, base_channels=4, depth=2, batch_norm=True)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    inference_ms(model, 16, 3, "cpu", repeat=1)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_the_tour_picture_predicts_on_inputs_normalised_as_in_training(tmp_path, monkeypatch):
    import numpy as np
    import tinyseg.visualize
    from tinyseg.predictor import Predictor
    from tinyseg.run_files import load_model
    from tinyseg.train import TrainConfig, fit
    from tinyseg.tour import MODELS, write_comparison
    config = TrainConfig(epochs=1, batch_size=2, size=16, train_count=4, val_count=2, base_channels=2,
                         depth=1, out=str(tmp_path / "unet"))
    fit(config, show_progress=False, log=lambda *a: None)
    model, meta = load_model(str(tmp_path / "unet" / "best.npz"))
    pictures = []
    monkeypatch.setattr(tinyseg.visualize, "save_grid", lambda path, images, truths, preds, names:
                        pictures.append((images, preds)))
    models = {name: model for name, _ in MODELS}
    write_comparison(str(tmp_path), models, {name: meta["normalization"] for name in models}, config, "cpu")
    images, preds = pictures[0]
    expected = [Predictor(model, meta["normalization"]).labels(image) for image in images]
    assert all(np.array_equal(got, want) for labels in preds.values() for got, want in zip(labels, expected))
