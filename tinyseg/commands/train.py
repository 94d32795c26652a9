"""`tinyseg train`: every option is a row of train_config.py's table; the work is train.fit.

    python -m tinyseg train --model fcn --epochs 5
    python -m tinyseg train --epochs 30 --resume

The rows give the options, their types, choices, defaults and help
(add_options), and the --resume help says which of them may change
(each row's on_resume). Four switches are not settings of the run itself:
--no-augment (--augment none), --resume, --overwrite and --no-progress.
"""

from __future__ import annotations

import argparse

from tinyseg.options import add_options
from tinyseg.train_config import (DATA_OPTIONS, LEARNING_OPTIONS, MODEL_ROWS, RUN_OPTIONS, TRAIN_OPTIONS,
                                  TrainConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The table's rows, in four groups as --help shows them, and the four switches."""
    model, data, learning, run = (parser.add_argument_group(title) for title in
                                  ("the model", "the data", "how it learns", "the run"))
    add_options(model, MODEL_ROWS)                     # models/options.py: shared with tour, graph...
    add_options(data, DATA_OPTIONS)
    data.add_argument("--no-augment", action="store_true", help="the same as --augment none")
    add_options(learning, LEARNING_OPTIONS)
    add_options(run, RUN_OPTIONS)
    run.add_argument("--resume", action="store_true", help=resume_help())
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run OUT already holds (without it, or --resume, a folder with a "
                     "run is refused)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def resume_help() -> str:
    """--resume's help: the options whose row says they may change on resume."""
    may_change = [row.flag for row in TRAIN_OPTIONS if row.on_resume == "may change"]
    return (f"continue the run in OUT from its last.npz (bit-identical to an uninterrupted run); "
            f"{', '.join(may_change)} may change, every other option must keep its stored value")


def train_config(args) -> TrainConfig:
    """The TrainConfig of parsed `args`: one field per row of the table."""
    config = TrainConfig(**{row.name: getattr(args, row.name) for row in TRAIN_OPTIONS})
    if args.no_augment:
        config.augment = "none"
    return config


def run(args) -> int:
    from tinyseg.train import fit
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in OUT and --overwrite replaces it: choose one")
    fit(train_config(args), resume=args.resume, overwrite=args.overwrite,
        show_progress=not args.no_progress)
    return 0
