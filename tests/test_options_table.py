"""One table of training options (train_config.TRAIN_OPTIONS): argparse, the checks, the resume rules.

Every row is read, not a list of the options someone thought of: each one
is a TrainConfig field with the row's default, a `train` option whose --help
shows that default, and a setting `--resume` refuses or takes as the row's
on_resume says.
"""

import argparse
import os
from dataclasses import asdict, fields, replace

import pytest

from tinyseg import cli
from tinyseg.backend import DEVICES
from tinyseg.commands.train import resume_help
from tinyseg.data.augment import POLICIES
from tinyseg.models import MODELS
from tinyseg.models.unet import DOWNSAMPLING
from tinyseg.nn.loss import LOSSES
from tinyseg.optim.lr_scheduler import SCHEDULES
from tinyseg.options import ON_RESUME
from tinyseg.train_config import ROWS, TRAIN_OPTIONS, TrainConfig, resume_changes

SWITCHES = (argparse._StoreTrueAction, argparse._HelpAction)     # off unless given: nothing to show


def subparsers() -> dict:
    """{command: its sub-parser}, as build_parser() makes them."""
    parser = cli.build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_train_config_has_one_field_per_row_in_its_order_with_its_default():
    assert [field.name for field in fields(TrainConfig)] == [row.name for row in TRAIN_OPTIONS]
    config = TrainConfig()
    for row in TRAIN_OPTIONS:
        if row.name != "out":
            assert getattr(config, row.name) == row.default, row.name
        assert row.on_resume in ON_RESUME, row.name
    assert config.out == os.path.join("runs", "unet")                 # --out's default: runs/MODEL
    assert TrainConfig(model="fcn").out == os.path.join("runs", "fcn")


def test_the_parsed_defaults_are_the_tables():
    args = cli.build_parser().parse_args(["train"])
    for row in TRAIN_OPTIONS:
        assert getattr(args, row.name) == row.default, row.name


def test_choices_come_from_the_tables_of_their_owners():
    owners = dict(model=tuple(MODELS), device=DEVICES, augment=POLICIES, schedule=SCHEDULES, loss=LOSSES,
                  down=DOWNSAMPLING)
    actions = {action.dest: action for action in subparsers()["train"]._actions}
    for name, choices in owners.items():
        assert tuple(ROWS[name].choices) == tuple(choices), name
        assert tuple(actions[name].choices) == tuple(choices), name


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_help_shows_the_default_of_every_option_of_every_command(command):
    parser = subparsers()[command]
    for action in parser._actions:
        if isinstance(action, SWITCHES) or action.required or not action.option_strings:
            continue
        assert "(default: " in (action.help or ""), (command, action.option_strings)
    text = " ".join(parser.format_help().split())                    # --help, its lines joined
    assert "%" not in text.replace("20%", "")                       # every %(default)s filled in
    if command == "train":
        for row in TRAIN_OPTIONS:
            assert " ".join(row.help_text.split()) in text, row.name
        for default in ("(default: 0.002)", "(default: 8)", "(default: 10)", "(default: 16)"):
            assert default in text                                  # lr, batch size, epochs, U-Net width


def test_the_resume_help_lists_exactly_the_options_that_may_change():
    may_change = [row.flag for row in TRAIN_OPTIONS if row.on_resume == "may change"]
    assert "--lr" in may_change and "--epochs" in may_change and "--batch-size" not in may_change
    listed = resume_help().split("); ")[1].split(" may change")[0].split(", ")
    assert listed == may_change


def other_value(row):
    """A value of the row's setting other than its default (valid or not: resume does not check)."""
    if row.choices:
        return next(choice for choice in row.choices if choice != row.default)
    if row.type is bool:
        return not row.default
    if row.nargs == 2:
        return [4, 4]
    if row.default is None:
        return 3 if row.type is int else "elsewhere"
    if row.type is str:
        return row.default + "-other"
    return row.default + 1


@pytest.mark.parametrize("row", TRAIN_OPTIONS, ids=lambda row: row.name)
def test_resume_refuses_or_takes_each_setting_as_its_row_says(row):
    stored = asdict(TrainConfig())
    given = replace(TrainConfig(), **{row.name: other_value(row)})
    if row.on_resume == "fixed":
        with pytest.raises(ValueError, match=f"{row.flag} \\(stored "):
            resume_changes(stored, given, "last.npz")
    elif row.on_resume == "may change":
        assert resume_changes(stored, given, "last.npz") == [(row.name, row.default, other_value(row))]
    else:
        assert resume_changes(stored, given, "last.npz") == []


@pytest.mark.parametrize("command", ["train", "graph", "complexity", "tour"])
def test_an_even_window_is_refused_by_every_command_in_the_same_words(tmp_path, capsys, command):
    """The limit is the --window row's: every command that takes the option checks it alike."""
    out = {"train": ["--out", str(tmp_path / "run")], "graph": ["--out", str(tmp_path / "g.dot")],
           "tour": ["--out", str(tmp_path / "tour"), "--budget", "1"], "complexity": []}[command]
    assert cli.main([command, "--window", "4", *out]) == 1
    err = capsys.readouterr().err
    assert err == f"tinyseg {command}: error: --window must be odd (a window centred on its pixel), got 4\n"
    assert not any(tmp_path.iterdir())                               # refused before any work


def test_an_fcn_without_layers_is_refused_before_any_work(tmp_path, capsys):
    assert cli.main(["train", "--model", "fcn", "--depth", "0", "--out", str(tmp_path / "run")]) == 1
    assert "--depth must be >= 1 for the FCN" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
