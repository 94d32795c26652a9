"""`tinyseg inspect`: see inside a trained network on one image (inspection/).

    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/
    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/ --pixel 30 41

writes the feature maps of each stage, saliency.png, probabilities.png and
entropy.png into --out, and prints what they show (inspection/command.py
reads the image, draws the pictures and writes the summary).
"""

from __future__ import annotations

import argparse
import os

from tinyseg.options import add_options
from tinyseg.train_config import ROWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of train (best.npz, last.npz)")
    parser.add_argument("image", help="one image file (PNG/JPEG/TIFF, any size)")
    parser.add_argument("--out", default="inspect", help="folder for the pictures (default: %(default)s)")
    parser.add_argument("--pixel", type=int, nargs=2, metavar=("Y", "X"), default=None,
                        help="the pixel whose gradient is drawn, row and column (default: the class "
                        "boundary pixel nearest the centre)")
    add_options(parser, [ROWS["device"]])


def run(args) -> int:
    """Check the options, inspect the image, write the pictures, print the summary."""
    from tinyseg.data.images import resize_image, scaled_size
    from tinyseg.inspection.command import check_pixel, read_input, summary, write_pictures
    from tinyseg.inspection.report import inspect_image
    from tinyseg.predictor import Predictor
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} is a file, not a folder")
    predictor, meta = Predictor.from_checkpoint(args.checkpoint, args.device)
    image = read_input(args.image, predictor.model.in_channels)
    if predictor.scale != 1:
        image = resize_image(image, scaled_size(*image.shape[1:], predictor.scale))
        print(f"note: the image is resized by the training --scale {predictor.scale:g} to "
              f"{image.shape[1]} x {image.shape[2]}; --pixel and the pictures are in that size")
    if args.pixel is not None:
        check_pixel(args.pixel, image.shape[1:])
    seen = inspect_image(predictor, image, None if args.pixel is None else tuple(args.pixel))
    class_names = meta.get("class_names") or [f"class {i}" for i in range(predictor.num_classes)]
    written = write_pictures(args.out, image, seen, class_names)
    print(summary(predictor.model, args.image, image, seen, class_names))
    print(f"wrote {os.path.join(args.out, '')}: {', '.join(written)}")
    return 0
