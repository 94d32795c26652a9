"""`tinyseg export`: a checkpoint as a PyTorch file or an ONNX file (interop/export.py).

    python -m tinyseg export --checkpoint runs/unet/best.npz --format torch --out model.pt
    python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx
"""

from __future__ import annotations

import argparse

from tinyseg.interop.export import SUFFIXES
from tinyseg.interop.onnx_export import DEFAULT_OPSET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a tinyseg checkpoint (runs/unet/best.npz)")
    parser.add_argument("--format", choices=sorted(SUFFIXES), required=True,
                        help="torch: a state dict and config for torch.load; onnx: an ONNX graph "
                        "that takes images in [0, 1] of any size")
    parser.add_argument("--out", default=None,
                        help="the file to write (default: the checkpoint's name with .pt or .onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help="ONNX opset (--format onnx) (default: %(default)s)")


def run(args) -> int:
    from tinyseg.interop.export import export_checkpoint
    print(export_checkpoint(args.checkpoint, args.format, args.out, args.opset))
    return 0
