"""One table of model options (models/options.py) behind `train`, `tour`, `complexity` and `graph`."""

from dataclasses import asdict

import pytest

import tinyseg.complexity.comparison as comparison
import tinyseg.tour as tour
from tinyseg import cli
from tinyseg.complexity import count_parameters
from tinyseg.models import FCN, UNet, build_model
from tinyseg.commands.train import train_config
from tinyseg.models.options import MODEL_DEFAULTS, MODEL_OPTIONS, model_config
from tinyseg.train_config import TrainConfig, check_config
from tinyseg.training_run import model_config as run_model_config

COMMANDS = ("train", "tour", "complexity", "graph")


def command_parser(command: str):
    """The sub-parser of `tinyseg COMMAND`, as build_parser() makes it."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices[command]


def action_of(parser, name: str):
    return next(a for a in parser._actions if a.dest == name)


def test_every_command_parses_each_model_option_with_the_tables_default_and_help():
    parser = cli.build_parser()
    for command in COMMANDS:
        args = parser.parse_args([command])
        sub = command_parser(command)
        for option in MODEL_OPTIONS:
            assert getattr(args, option.name) == option.default, (command, option.name)
            action = action_of(sub, option.name)
            assert action.help == option.help_text, (command, option.name)
            assert action.help.startswith(option.help) and "(default: " in action.help
            assert option.flag in action.option_strings, (command, option.name)


def test_train_config_defaults_are_the_tables():
    config = asdict(TrainConfig())
    assert {name: config[name] for name in MODEL_DEFAULTS} == MODEL_DEFAULTS
    parsed = train_config(cli.build_parser().parse_args(["train"]))
    assert {name: getattr(parsed, name) for name in MODEL_DEFAULTS} == MODEL_DEFAULTS


def changed_value(option):
    """A value of the option other than its default (and one every model can still be built with)."""
    if isinstance(option.default, bool):
        return not option.default
    if option.choices:
        return next(c for c in option.choices if c != option.default)
    if isinstance(option.default, int):
        return option.default - 1 if option.name != "window" else option.default - 2   # odd
    raise AssertionError(f"no other value for {option.name}")


@pytest.mark.parametrize("option", MODEL_OPTIONS, ids=lambda o: o.name)
def test_an_option_changes_exactly_the_models_the_table_says_read_it(option):
    changed = {**MODEL_DEFAULTS, option.name: changed_value(option)}
    for model in ("naive", "fcn", "unet"):
        before = model_config(model, MODEL_DEFAULTS, in_channels=3, num_classes=4)
        after = model_config(model, changed, in_channels=3, num_classes=4)
        assert (before != after) == (model in option.models), (option.name, model)


def test_train_builds_its_model_with_the_depth_given():
    for model in ("fcn", "unet"):
        args = cli.build_parser().parse_args(["train", "--model", model, "--depth", "2"])
        config = train_config(args)
        built = build_model(run_model_config(config, in_channels=3, num_classes=4))
        assert built.config["depth"] == 2, model


def test_tour_trains_every_model_with_the_options_given(monkeypatch, tmp_path):
    trained = []

    def fake_fit(config, **kwargs):             # what fit() would train: record it, skip the work
        trained.append(config)
        return {"mean_iou": 0.0}

    def fake_load_model(path, device="cpu"):    # the model fit() builds from that config
        return build_model(run_model_config(trained[-1], in_channels=3, num_classes=4)), {}

    monkeypatch.setattr(tour, "fit", fake_fit)
    monkeypatch.setattr(tour, "load_model", fake_load_model)
    monkeypatch.setattr(tour, "inference_ms", lambda *args, **kwargs: 1.0)
    monkeypatch.setattr(tour, "window_speedups", lambda *args, **kwargs: [])
    monkeypatch.setattr(tour, "write_comparison", lambda *args, **kwargs: "tour.png")
    assert cli.main(["tour", "--out", str(tmp_path), "--depth", "2", "--width", "8",
                     "--no-progress"]) == 0
    assert [config.model for config in trained] == ["naive", "fcn", "unet"]
    for config in trained:
        assert (config.depth, config.width) == (2, 8)
        built = build_model(run_model_config(config, in_channels=3, num_classes=4))
        if config.model != "naive":
            assert built.config["depth"] == 2
        if config.model != "unet":
            assert built.config["width"] == 8


def test_complexity_reports_the_models_with_the_depth_given(monkeypatch, capsys):
    reports = []
    monkeypatch.setattr(comparison, "format_report", lambda result: reports.append(result) or "")
    assert cli.main(["complexity", "--size", "16", "16", "--depth", "2"]) == 0
    rows = {row["model"]: row for row in reports[0]["rows"]}
    assert rows["FCN"]["parameters"] == count_parameters(FCN(3, 4, width=32, depth=2))
    assert rows["U-Net"]["parameters"] == count_parameters(UNet(3, 4, base_channels=16, depth=2,
                                                                batch_norm=True))
    assert "depth 2" in reports[0]["settings"]["FCN"] and "depth 2" in reports[0]["settings"]["U-Net"]


def test_a_window_too_small_for_the_naive_depth_names_both_options():
    settings = {**MODEL_DEFAULTS, "window": 3, "naive_depth": 2}
    with pytest.raises(ValueError, match="--window must be >= 5.*--naive-depth"):
        model_config("naive", settings, in_channels=3, num_classes=4)
    assert model_config("naive", {**settings, "naive_depth": 1}, 3, 4)["depth"] == 1


def test_a_negative_naive_depth_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="--naive-depth"):
        check_config(TrainConfig(naive_depth=-1))
