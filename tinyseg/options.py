"""Command-line options as rows of a table: what each one means, its default, which values make sense.

A command's options are a tuple of rows, one Option each: the models' shape
(models/options.py: MODEL_OPTIONS) and a training run's settings
(train_config.py: TRAIN_OPTIONS, which holds the models' rows too). Nothing
else states an option's type, default, choices or limits; everything that
needs them reads the rows:

    row = Option("batch_size", 8, "training images per step", int, check=Number(1, integer=True))
    row.flag                              # "--batch-size"
    add_options(parser, rows)             # argparse: --batch-size N (default: 8), with its choices
    check_options({"batch_size": 0}, rows)
    # ValueError: --batch-size must be an integer >= 1, got 0

A row's `check` is any function check(flag, value) that raises a ValueError
naming the flag; Number is the common one (a finite number within bounds).
A row checks its own value only. A limit that involves two options (a
warm-up shorter than the run, a window large enough for its layers) is
checked where both are known: train_config.check_config, and
models/options.check_model_settings.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable

ON_RESUME = ("fixed", "may change", "not compared")


@dataclass(frozen=True)
class Option:
    """One option: --name on the command line, `name` in the parsed arguments and in TrainConfig.

    on_resume: "fixed" (it decides what the saved weights mean: `--resume`
    refuses a new value), "may change" (the new value wins, and the run says
    so) or "not compared" (--out: where the run is, not what it is).
    models: the models that read it (keys of tinyseg.models.MODELS), for the
    models' own options; empty for the others.
    shown_default: what --help says the default is, where the value alone
    would not say it (None means "the folder's own", say).
    """
    name: str
    default: object
    help: str
    type: type
    choices: tuple | None = None
    check: Callable | None = None
    on_resume: str = "fixed"
    models: tuple = ()
    nargs: int | None = None
    metavar: str | tuple | None = None
    shown_default: str | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling: base_channels -> --base-channels, batch_norm -> --no-batch-norm."""
        prefix = "--no-" if self.default is True else "--"
        return prefix + self.name.replace("_", "-")

    @property
    def help_text(self) -> str:
        """The help line --help shows: the row's help and its default."""
        if self.shown_default is not None:
            default = self.shown_default
        elif isinstance(self.default, bool):
            default = "on" if self.default else "off"
        else:
            default = str(self.default)
        return f"{self.help} (default: {default})"


def add_options(parser: argparse.ArgumentParser, rows) -> None:
    """Every row as an option of `parser`, with its type, choices, default and help.

    A switch (type bool) is --name when it is off by default and --no-name
    when it is on (--no-batch-norm).
    """
    for row in rows:
        help_text = row.help_text.replace("%", "%%")            # argparse reads % as a format
        if row.type is bool:
            action = "store_false" if row.default else "store_true"
            parser.add_argument(row.flag, dest=row.name, action=action, help=help_text)
        else:
            parser.add_argument(row.flag, dest=row.name, type=row.type, default=row.default,
                                choices=row.choices, nargs=row.nargs, metavar=row.metavar, help=help_text)


def check_options(settings: dict, rows) -> None:
    """ValueError naming the option of the first value in `settings` that its row refuses.

    settings: {name: value}, e.g. vars(args) or vars(config). None is
    accepted wherever it is the row's default (--classes not given).
    """
    for row in rows:
        value = settings[row.name]
        if value is None and row.default is None:
            continue
        if row.choices is not None and value not in row.choices:
            raise ValueError(f"{row.flag} must be one of {', '.join(map(str, row.choices))}, got {value!r}")
        if row.check is not None:
            row.check(row.flag, value)


@dataclass(frozen=True)
class Number:
    """A check: a finite number (an integer if `integer`) >= minimum, or > minimum if `above`,
    and < below if given. Number(1, integer=True)("--epochs", 0) raises
    "--epochs must be an integer >= 1, got 0"."""
    minimum: float
    integer: bool = False
    above: bool = False
    below: float | None = None

    def __call__(self, flag: str, value) -> None:
        wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
        if not wrong_type and self.integer and value != int(value):
            wrong_type = True
        if (wrong_type or not math.isfinite(value) or value < self.minimum
                or (self.above and value == self.minimum)
                or (self.below is not None and value >= self.below)):
            raise ValueError(f"{flag} must be {self.description}, got {value!r}")

    @property
    def description(self) -> str:
        """"an integer >= 1", "a positive finite number", "a finite number in [0, 1)"..."""
        if self.integer:
            return f"an integer >= {self.minimum:g}"
        if self.below is not None:
            return f"a finite number in [{self.minimum:g}, {self.below:g})"
        if self.above:
            return "a positive finite number" if self.minimum == 0 else f"a finite number > {self.minimum:g}"
        return f"a finite number >= {self.minimum:g}"


def odd_size(flag: str, value) -> None:
    """A check: an odd integer >= 1, the side of a window centred on its pixel."""
    Number(1, integer=True)(flag, value)
    if value % 2 == 0:
        raise ValueError(f"{flag} must be odd (a window centred on its pixel), got {value}")


def two_sizes(flag: str, value) -> None:
    """A check: [H, W], two integers >= 1 (--crop H W)."""
    if len(value) != 2:
        raise ValueError(f"{flag} takes two sizes, H and W, got {value!r}")
    for size in value:
        Number(1, integer=True)(flag, size)
