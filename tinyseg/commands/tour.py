"""`tinyseg tour`: naive vs FCN vs U-Net, trained on one budget and measured (tour.py).

    python -m tinyseg tour                 # about 6 minutes on a 2-core CPU
    python -m tinyseg tour --budget 60     # a quicker look
"""

from __future__ import annotations

import argparse

from tinyseg.models import MODELS
from tinyseg.models.options import MODEL_OPTIONS, check_model_settings, model_settings
from tinyseg.options import add_options, check_options
from tinyseg.train_config import ROWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=float, default=300.0,
                        help="training seconds for all three models together (default: %(default)g)")
    parser.add_argument("--out", default="runs/tour", help="the folder of the three runs and tour.png "
                        "(default: %(default)s)")
    add_options(parser, [ROWS["device"], ROWS["seed"]])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256],
                        help="image sizes for the inference timings (default: 64 128 256)")
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[32, 64, 128],
                        help="image sizes for the sliding window vs to_fcn() timings (default: 32 64 128)")
    parser.add_argument("--train-count", type=int, default=400,
                        help="built-in training images (default: %(default)s)")
    parser.add_argument("--val-count", type=int, default=64,
                        help="built-in validation images (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_options(parser, MODEL_OPTIONS)                 # the models' options of `tinyseg train`


def run(args) -> int:
    from tinyseg.tour import run_tour
    settings = model_settings(args)
    check_options(settings, MODEL_OPTIONS)
    for model in MODELS:                               # before any of them trains
        check_model_settings(model, settings)
    run_tour(budget=args.budget, out=args.out, sizes=args.sizes, window_sizes=args.window_sizes,
             device=args.device, seed=args.seed, train_count=args.train_count,
             val_count=args.val_count, show_progress=not args.no_progress, model_options=settings)
    return 0
