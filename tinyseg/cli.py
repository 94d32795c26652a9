"""The command line: `python -m tinyseg train | eval | predict` (or just `tinyseg ...`).

    python -m tinyseg train                          # U-Net on the built-in shapes data
    python -m tinyseg train --model fcn --epochs 5   # the FCN, for comparison
    python -m tinyseg eval --checkpoint runs/unet/best.npz
    python -m tinyseg predict --checkpoint runs/unet/best.npz photo.png --out masks/
    python -m tinyseg tour                           # naive vs FCN vs U-Net, measured
    python -m tinyseg complexity --size 256 256      # parameters, MACs, memory, receptive field
    python -m tinyseg augment --out aug.png          # what --augment standard does to the data
    python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx
    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/   # inside the network
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from dataclasses import fields

from tinyseg.checkpoint import CheckpointError
from tinyseg.models.options import add_model_arguments
from tinyseg.nn.loss import LOSSES
from tinyseg.train import TrainConfig, TrainingError

DEFAULTS = TrainConfig()


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--model", choices=["naive", "fcn", "unet"], default=d.model)
    parser.add_argument("--data", default=d.data, help="'shapes' (built-in synthetic data) or a "
                        "folder with images/ and masks/ (or train/ and val/ each holding both)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer)
    parser.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=d.device)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--out", default=None, help="output folder (default runs/MODEL)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.npz (--epochs, --lr, --momentum, "
                        "--weight-decay, --time-budget, --check-every, --schedule, --warmup-epochs "
                        "may change; the model, data, counts, --loss and --class-weights may not)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run OUT already holds (without it, or --resume, "
                        "a folder with a run is refused)")
    add_model_arguments(parser)                      # --depth, --width, ...: models/options.py
    parser.add_argument("--size", type=int, default=d.size, help="built-in image size")
    parser.add_argument("--train-count", type=int, default=None,
                        help="built-in data: training images (default 800); a folder trains on "
                        "every training pair it holds")
    parser.add_argument("--val-count", type=int, default=None,
                        help="validation images: built-in data 64 by default; a folder of "
                        "images/ and masks/ sets aside this many (default 20%%), a folder with "
                        "train/ and val/ uses val/")
    parser.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="train on random H x W crops (validation uses whole images)")
    parser.add_argument("--scale", type=float, default=d.scale,
                        help="folders: resize images and masks by this factor when read (e.g. 0.5)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes")
    parser.add_argument("--mask-colors", default=None, metavar="FILE",
                        help="folders: the masks are colour pictures; FILE is a CSV of name,r,g,b "
                        "(CamVid's class_dict.csv), class i the colour of row i")
    parser.add_argument("--label-map", default=None, metavar="FILE",
                        help="folders: a CSV of id,train_id lines (e.g. Cityscapes ids to train ids); "
                        "ids it does not list become 255 (ignore)")
    parser.add_argument("--reduce-zero-label", action="store_true",
                        help="folders: label 0 becomes 255 (ignore) and every other label one less "
                        "(ADE20K's masks)")
    parser.add_argument("--augment", choices=["none", "flip", "standard"], default=d.augment,
                        help="none; flip: random flips (default); standard: flips, then quarter "
                        "turns, scale 0.75-1.25 with a crop back to size, and brightness and "
                        "contrast, each on half the examples")
    parser.add_argument("--no-augment", action="store_true", help="the same as --augment none")
    parser.add_argument("--loss", choices=list(LOSSES), default=d.loss,
                        help="cross-entropy, soft Dice, their sum, or focal loss")
    parser.add_argument("--focal-gamma", type=float, default=d.focal_gamma,
                        help="--loss focal: weight each pixel's cross-entropy by (1 - p_t)^GAMMA, "
                        "so pixels already right count less (0 is cross-entropy)")
    parser.add_argument("--schedule", choices=["none", "step", "cosine", "poly"], default=d.schedule,
                        help="learning-rate schedule, stepped once per epoch")
    parser.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                        help="epochs of linear learning-rate warm-up before the schedule")
    parser.add_argument("--class-weights", default=d.class_weights,
                        help="none; auto: from the training masks' pixel counts (median "
                        "frequency); or one positive number per class, e.g. 1,2,5")
    parser.add_argument("--check-every", type=int, default=d.check_every,
                        help="read the loss back every N steps (fewer GPU syncs)")
    parser.add_argument("--time-budget", type=float, default=d.time_budget,
                        help="stop training after this many seconds (0: no limit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def train_config(args) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)} - {"augment", "out"}
    config = TrainConfig(**{name: getattr(args, name) for name in names})
    config.crop = list(args.crop) if args.crop else None
    config.augment = "none" if args.no_augment else args.augment
    config.out = args.out or os.path.join("runs", args.model)
    return config


def command_train(args) -> int:
    from tinyseg.train import fit
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in OUT and --overwrite replaces it: choose one")
    fit(train_config(args), resume=args.resume, overwrite=args.overwrite,
        show_progress=not args.no_progress)
    return 0


def command_eval(args) -> int:
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
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in meta.get("train_config", {}).items() if k in known})
    mask_labels = MaskLabels.from_json(meta.get("mask_labels"))     # as training read the masks
    if data is None or data == "shapes":
        config.data = data or config.data
        return build_datasets(config, show_progress=True, mask_labels=mask_labels)[1]
    check_data_folder(data)
    classes = meta.get("class_names") or meta["model_config"]["num_classes"]
    return load_folder(data, classes=classes, scale=config.scale, split=False, mask_labels=mask_labels,
                       progress=True)


def command_predict(args) -> int:
    """Check every input, then write OUT/STEM_mask.png and OUT/STEM_overlay.png (and STEM_probs.npy)."""
    from tinyseg.predict import predict_files
    from tinyseg.data.mask_labels import MaskLabels
    from tinyseg.predictor import Predictor
    from tinyseg.visualize import class_palette
    if args.tile_size < 1:
        raise ValueError(f"--tile-size must be >= 1, got {args.tile_size}")
    predictor, meta = Predictor.from_checkpoint(args.checkpoint, args.device, args.tile_size)
    palette = class_palette(MaskLabels.from_json(meta.get("mask_labels")).palette())   # the user's colours
    for image, *files in predict_files(predictor, args.inputs, args.out, probs=args.probs, tta=args.tta,
                                       palette=palette):
        print(f"{image} -> {', '.join(files)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyseg", description="Semantic segmentation from scratch.")
    commands = parser.add_subparsers(dest="command")
    train = commands.add_parser("train", help="train a model (default: U-Net on built-in data)")
    add_train_arguments(train)
    evaluation = commands.add_parser("eval", help="print the metrics table of a checkpoint")
    evaluation.add_argument("--checkpoint", required=True)
    evaluation.add_argument("--data", default=None,
                            help="a folder: score every image in it (with the checkpoint's "
                            "classes); default: the validation split it was trained with")
    evaluation.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    evaluation.add_argument("--out", default=None, metavar="FILE.png",
                            help="also draw the confusion matrix (pixel counts and row-normalised) "
                            "into this PNG (needs matplotlib)")
    predict = commands.add_parser("predict", help="write masks and overlays for images")
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("inputs", nargs="+", help="image files (PNG/JPEG/TIFF, any size)")
    predict.add_argument("--out", default="predictions")
    predict.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    predict.add_argument("--probs", action="store_true",
                         help="also write STEM_probs.npy: the class probabilities, float16 (K, H, W)")
    predict.add_argument("--tta", choices=["none", "flip"], default="none",
                         help="flip: average the probabilities of the image and its 3 flips "
                         "(test-time augmentation, 4 passes)")
    from tinyseg.tiling import TILE_SIZE
    predict.add_argument("--tile-size", type=int, default=TILE_SIZE,
                         help="larger images run in tiles of this many pixels a side, plus margins "
                         "(the same labels; less memory, a little more time)")
    from tinyseg import complexity, graph, tour
    tour.add_arguments(commands.add_parser(
        "tour", help="train naive, FCN and U-Net on one budget and compare them"))
    complexity.add_arguments(commands.add_parser(
        "complexity", help="parameters, MACs, activation memory and receptive field of each model"))
    graph.add_arguments(commands.add_parser("graph", help="draw a model's autograd graph (Graphviz DOT)"))
    from tinyseg.interop import export
    export.add_arguments(commands.add_parser(
        "export", help="write a checkpoint's model for PyTorch (.pt) or ONNX Runtime (.onnx)"))
    from tinyseg.data import augment as augment_command
    augment_command.add_arguments(commands.add_parser(
        "augment", help="picture a few training images and masks after augmentation"))
    from tinyseg.inspection import command as inspect_command
    inspect_command.add_arguments(commands.add_parser(
        "inspect", help="see inside a trained model on one image: feature maps, what a pixel "
        "looked at, uncertainty"))
    return parser


INTERRUPTED = {                # what a Ctrl-C leaves, per command: every file written is whole
    "train": "interrupted; the last finished epoch is saved: continue with --resume",
    "predict": "interrupted; the masks and overlays written so far are complete: run predict "
               "again for the rest",
}


def main(argv=None) -> int:
    """Run one command; every way it can end is one line on stderr and an exit status.

    0 done; 1 an error in what was asked (a file, an option: the line names it);
    2 a bug in tinyseg (TINYSEG_DEBUG=1 shows its traceback); 130 interrupted (Ctrl-C).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = (argv or ["train"])[0]
    try:
        for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \x.. escapes
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        args = build_parser().parse_args(argv or ["train"])      # no command at all: train the default
        command = args.command
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return run_command(args)      # inf and nan are caught by the run itself, naming the step
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


def run_command(args) -> int:
    """Hand the parsed arguments to the command's function."""
    from tinyseg import complexity, graph, tour
    from tinyseg.data import augment as augment_command
    from tinyseg.interop import export
    from tinyseg.inspection import command as inspect_command
    handlers = {"train": command_train, "eval": command_eval, "predict": command_predict,
                "tour": tour.run, "complexity": complexity.run,
                "graph": graph.run, "augment": augment_command.run, "export": export.run,
                "inspect": inspect_command.run}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
