"""`tinyseg eval`: score a checkpoint, print its metrics table and confusion matrix.

    python -m tinyseg eval --checkpoint runs/unet/best.npz                  # its validation split
    python -m tinyseg eval --checkpoint runs/unet/best.npz --data photos/   # every image of a folder
    python -m tinyseg eval --checkpoint runs/unet/best.npz --out confusion.png
"""

from __future__ import annotations

import argparse
import os

from tinyseg.options import add_options
from tinyseg.train_config import DEFAULTS, ROWS, TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of train (best.npz, last.npz)")
    parser.add_argument("--data", default=None,
                        help="a folder: score every image in it (with the checkpoint's classes) "
                        "(default: the validation split it was trained with)")
    add_options(parser, [ROWS["device"]])
    parser.add_argument("--out", default=None, metavar="FILE.png",
                        help="also draw the confusion matrix (pixel counts and row-normalised) "
                        "into this PNG (needs matplotlib) (default: print it only)")


def run(args) -> int:
    """Score a checkpoint: on its own validation split, or on every image of --data FOLDER."""
    from tinyseg.metrics import format_confusion, format_table
    from tinyseg.evaluate import evaluate
    from tinyseg.predictor import Predictor
    from tinyseg.visualize import save_confusion_matrix
    if args.out is not None and (not args.out.lower().endswith(".png") or os.path.isdir(args.out)):
        raise ValueError(f"--out names the confusion-matrix picture, a .png file; got {args.out!r}")
    predictor, meta = Predictor.from_checkpoint(args.checkpoint, args.device)
    dataset = eval_dataset(args.data, meta)
    if dataset.num_classes != predictor.num_classes:
        raise ValueError(f"--data has {dataset.num_classes} classes but the checkpoint's model "
                         f"predicts {predictor.num_classes}")
    if dataset.class_pixel_counts().sum() == 0:
        raise ValueError(f"no mask of --data labels any pixel (all are 255, ignore): nothing to score")
    metrics = evaluate(predictor, dataset, show_progress=True)
    print(f"{len(dataset)} images")
    class_names = meta.get("class_names") or dataset.class_names
    print(format_table(metrics, class_names))
    print("\n" + format_confusion(metrics["confusion"], class_names))
    if args.out is not None and save_confusion_matrix(args.out, metrics["confusion"], class_names):
        print(f"wrote {args.out}")
    return 0


def eval_dataset(data, meta: dict):
    """Every pair of folder `data`, read with the checkpoint's classes; else its validation split."""
    from tinyseg.data import load_folder
    from tinyseg.data.mask_labels import MaskLabels
    from tinyseg.train import build_datasets, check_data_folder
    config = TrainConfig(**{k: v for k, v in meta.get("train_config", {}).items() if k in DEFAULTS})
    mask_labels = MaskLabels.from_json(meta.get("mask_labels"))     # as training read the masks
    if data is None or data == "shapes":
        config.data = data or config.data
        return build_datasets(config, show_progress=True, mask_labels=mask_labels)[1]
    check_data_folder(data)
    classes = meta.get("class_names") or meta["model_config"]["num_classes"]
    return load_folder(data, classes=classes, scale=config.scale, split=False, mask_labels=mask_labels,
                       progress=True)
