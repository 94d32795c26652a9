"""The command line: `python -m tinyseg COMMAND [options]` (or just `tinyseg ...`).

    python -m tinyseg train                          # U-Net on the built-in shapes data
    python -m tinyseg train --model fcn --epochs 5   # the FCN, for comparison
    python -m tinyseg train --help                   # every option, with its default
    python -m tinyseg eval --checkpoint runs/unet/best.npz
    python -m tinyseg predict --checkpoint runs/unet/best.npz photo.png --out masks/
    python -m tinyseg tour                           # naive vs FCN vs U-Net, measured
    python -m tinyseg complexity --size 256 256      # parameters, MACs, memory, receptive field
    python -m tinyseg augment --out aug.png          # what --augment standard does to the data
    python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx
    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/   # inside the network

Each command is a module of tinyseg/commands/ with two functions,
add_arguments(parser) and run(args). This file builds the parser from them,
runs the command asked for, and turns every way it can end into one line on
stderr and an exit status.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from tinyseg import backend
from tinyseg.checkpoint import CheckpointError
from tinyseg.commands import augment, complexity, export, graph, inspect, predict, tour, train
from tinyseg.commands import eval as evaluate
from tinyseg.training_run import TrainingError

COMMANDS = {          # name: (its module in tinyseg/commands/, what `tinyseg --help` says it does)
    "train": (train, "train a model (default: U-Net on built-in data)"),
    "eval": (evaluate, "print the metrics table of a checkpoint"),
    "predict": (predict, "write masks and overlays for images"),
    "tour": (tour, "train naive, FCN and U-Net on one budget and compare them"),
    "complexity": (complexity, "parameters, MACs, activation memory and receptive field of each model"),
    "graph": (graph, "draw a model's autograd graph (Graphviz DOT)"),
    "export": (export, "write a checkpoint's model for PyTorch (.pt) or ONNX Runtime (.onnx)"),
    "augment": (augment, "picture a few training images and masks after augmentation"),
    "inspect": (inspect, "see inside a trained model on one image: feature maps, what a pixel "
                "looked at, uncertainty"),
}

INTERRUPTED = {                # what a Ctrl-C leaves, per command: every file written is whole
    "train": "interrupted; the last finished epoch, if one finished, is saved: continue with --resume",
    "predict": "interrupted; the masks and overlays written so far are complete: run predict "
               "again for the rest",
}


def build_parser() -> argparse.ArgumentParser:
    """`tinyseg` and one sub-parser per command, each filled by its module's add_arguments."""
    parser = argparse.ArgumentParser(prog="tinyseg", description="Semantic segmentation from scratch.")
    commands = parser.add_subparsers(dest="command")
    for name, (module, summary) in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=summary, description=summary))
    return parser


def main(argv=None) -> int:
    """Run one command; every way it can end is one line on stderr and an exit status.

    0 done; 1 an error in what was asked (a file, an option: the line names it);
    2 a bug in tinyseg (TINYSEG_DEBUG=1 shows its traceback); 130 interrupted (Ctrl-C).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = (argv or ["train"])[0]
    backend.keep_freed_memory()     # this process is ours: each step reuses the last one's pages
    try:
        for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \x.. escapes
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        args = build_parser().parse_args(argv or ["train"])      # no command at all: train the default
        command = args.command
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return COMMANDS[command][0].run(args)   # inf and nan are caught by the run itself, naming the step
    except (CheckpointError, TrainingError, ValueError, RuntimeError, OSError, ImportError) as error:
        print(f"tinyseg {command}: error: {error}", file=sys.stderr)   # DataError: many lines
        return 1
    except KeyboardInterrupt:
        print("\n" + INTERRUPTED.get(command, "interrupted"), file=sys.stderr)
        return 130
    except MemoryError:
        print(f"tinyseg {command}: error: out of memory; use smaller inputs or settings "
              f"(--batch-size, --crop, --scale, --tile-size, --size)", file=sys.stderr)
        return 1
    except Exception as error:                  # a bug in tinyseg itself, not in what was asked
        if os.environ.get("TINYSEG_DEBUG"):
            raise
        print(f"tinyseg {command}: internal error, a bug in tinyseg (please report it; "
              f"TINYSEG_DEBUG=1 shows the traceback): {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
