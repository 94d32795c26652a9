"""`tinyseg graph`: draw a model's forward pass and loss as an autograd graph (graph.py).

    python -m tinyseg graph --model unet --size 64 64 --out unet.svg --group-by-module
"""

from __future__ import annotations

import argparse

import numpy as np

from tinyseg.models.options import MODEL, MODEL_OPTIONS, model_config, model_settings
from tinyseg.options import add_options, check_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tinyseg graph`: the image, the model (the same rows as train's), the boxes."""
    add_options(parser, [MODEL])
    parser.add_argument("--size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"),
                        help="image height and width (default: 64 64)")
    parser.add_argument("--out", default="graph.svg",
                        help="picture to write (.svg, .png, .pdf, .dot) (default: %(default)s)")
    parser.add_argument("--in-channels", type=int, default=3, help="image channels (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=4, help="number of classes (default: %(default)s)")
    add_options(parser, MODEL_OPTIONS)                 # --base-channels, --depth, --width, ... as in train
    parser.add_argument("--group-by-module", action="store_true",
                        help="draw a box around what each module made (a U-Net level, a block)")
    parser.add_argument("--group-depth", type=int, default=2,
                        help="with --group-by-module: how many parts of a module's path make "
                             "one box (1: 'encoder', 2: 'encoder.0', ...) (default: %(default)s)")


def build_model(args):
    """The model to draw, from the parsed options (the same table as `tinyseg train`'s)."""
    from tinyseg.models import build_model as build
    settings = model_settings(args)
    check_options(settings, MODEL_OPTIONS)
    return build(model_config(args.model, settings, args.in_channels, args.classes))


def run(args) -> int:
    """Draw the forward pass and loss of one blank image through the chosen model."""
    from tinyseg import functional as F
    from tinyseg.graph import draw, graph_order
    from tinyseg.recording import Recording
    from tinyseg.tensor import Tensor
    height, width = args.size
    if height < 1 or width < 1:
        raise ValueError(f"--size must be positive, got {height} {width}")
    if args.group_depth < 1:
        raise ValueError(f"--group-depth must be >= 1, got {args.group_depth}")
    model = build_model(args)
    if (model.smallest_normalized_map(height, width) or 2) < 2:
        raise ValueError(f"--size {height} {width} leaves one value per channel in the model's "
                         f"smallest map, too few for batch norm on one image: use a larger --size "
                         f"or --no-batch-norm")
    image = Tensor(np.zeros((1, args.in_channels, height, width), dtype=np.float32))
    target = np.zeros((1, height, width), dtype=np.int64)
    with Recording() as seen:                  # the module that ran each operation, for the boxes
        loss = F.cross_entropy(model(image), target)
    written = draw(loss, seen, args.out, model=model,
                   group_depth=args.group_depth if args.group_by_module else 0)
    operations = sum(1 for _, operation in graph_order(loss, seen) if operation is not None)
    print(f"{args.model}: {operations} operations on a {height} x {width} image -> {written}")
    return 0
