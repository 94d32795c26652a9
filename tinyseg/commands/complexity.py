"""`tinyseg complexity`: parameters, MACs, memory and receptive field of each model (complexity/).

    python -m tinyseg complexity --size 256 256
    python -m tinyseg complexity --size 100000 100000 --depth 5
"""

from __future__ import annotations

import argparse

from tinyseg.models.options import MODEL_OPTIONS, model_settings
from tinyseg.options import add_options, check_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The image, and the models' options of `tinyseg train`."""
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
                        help="image height and width (default: 128 128)")
    parser.add_argument("--in-channels", type=int, default=3, help="image channels (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=4, help="number of classes (default: %(default)s)")
    add_options(parser, MODEL_OPTIONS)


def run(args) -> int:
    """Print the report for parsed `args`; returns the exit status."""
    from tinyseg.complexity import comparison
    if min(args.size) < 1:
        raise ValueError(f"--size must be positive, got {args.size[0]} {args.size[1]}")
    settings = model_settings(args)
    check_options(settings, MODEL_OPTIONS)
    result = comparison.report(size=tuple(args.size), in_channels=args.in_channels,
                               num_classes=args.classes, **settings)
    print(comparison.format_report(result))
    return 0
