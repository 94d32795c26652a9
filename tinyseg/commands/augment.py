"""`tinyseg augment`: a picture of a few training images and masks after augmentation.

    python -m tinyseg augment --data my_data/ --out aug.png   # what --augment standard does

Each example of each epoch is augmented by the generator training gives it
(data/augment.py: example_rng(seed, epoch, index)), so the picture shows
what a run with the same --seed sees.
"""

from __future__ import annotations

import argparse

from tinyseg.data.augment import POLICIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tinyseg augment`."""
    parser.add_argument("--data", default="shapes", help="'shapes' (built-in data) or a folder "
                        "with images/ and masks/ (its training split is shown) (default: %(default)s)")
    parser.add_argument("--augment", choices=POLICIES, default="standard",
                        help="the policy to show (default: %(default)s)")
    parser.add_argument("--out", default="augment.png", help="the PNG to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the training run's --seed (default: %(default)s)")
    parser.add_argument("--count", type=int, default=4, help="examples (rows) to show (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs (column pairs) to show (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="built-in image size (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=None,
                        help="number of classes (default: 4 built-in, a folder's from its masks)")


def run(args) -> int:
    """Draw the picture `add_arguments` describes and print its path."""
    from tinyseg.data.augment import augmentation_grid
    from tinyseg.data.folder import load_folder
    from tinyseg.data.shapes import shapes_dataset
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.data == "shapes":
        dataset = shapes_dataset("train", count=args.count, size=args.size,
                                 num_classes=args.classes or 4, seed=args.seed)
    else:
        dataset = load_folder(args.data, classes=args.classes, seed=args.seed)[0]
    print(augmentation_grid(dataset, args.out, args.augment, args.seed, args.count, args.epochs))
    return 0
