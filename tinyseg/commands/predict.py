"""`tinyseg predict`: masks and overlays (and probabilities) for images of any size.

    python -m tinyseg predict --checkpoint runs/unet/best.npz photo.png --out masks/
    python -m tinyseg predict --checkpoint runs/unet/best.npz photo.png --out masks/ --probs --tta flip
"""

from __future__ import annotations

import argparse

from tinyseg.options import add_options
from tinyseg.tiling import TILE_SIZE
from tinyseg.train_config import ROWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of train (best.npz, last.npz)")
    parser.add_argument("inputs", nargs="+", help="image files (PNG/JPEG/TIFF, any size)")
    parser.add_argument("--out", default="predictions",
                        help="the folder to write into (default: %(default)s)")
    add_options(parser, [ROWS["device"]])
    parser.add_argument("--probs", action="store_true",
                        help="also write STEM_probs.npy: the class probabilities, float16 (K, H, W)")
    parser.add_argument("--tta", choices=["none", "flip"], default="none",
                        help="flip: average the probabilities of the image and its 3 flips "
                        "(test-time augmentation, 4 passes) (default: %(default)s)")
    parser.add_argument("--tile-size", type=int, default=TILE_SIZE,
                        help="larger images run in tiles of this many pixels a side, plus margins "
                        "(the same labels; less memory, a little more time) (default: %(default)s)")


def run(args) -> int:
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
