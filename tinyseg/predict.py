"""Segment image files: for each input, an index-PNG mask and a colour overlay.

    python -m tinyseg predict --checkpoint runs/unet/best.npz a.png b.jpg --out masks/

Images of any size work: the U-Net pads to a multiple of 2**depth and crops
back, the FCN and sliding window need no padding at all. Images are read the
way the training folders are (values in [0, 1]); a grey image given to a
colour model is repeated to three channels, and a colour image given to a
grey model is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.data.folder import import_pillow, read_image
from tinyseg.tensor import Tensor
from tinyseg.visualize import overlay, save_mask_png


def image_for_model(image: np.ndarray, in_channels: int, path: str) -> np.ndarray:
    """(C, H, W) image with the channel count the model expects."""
    if image.shape[0] == in_channels:
        return image
    if image.shape[0] == 1:
        return np.repeat(image, in_channels, axis=0)
    raise ValueError(f"predict: {path} has {image.shape[0]} channels but the model expects {in_channels}")


def predict_files(model, inputs, out: str, device: str = "cpu") -> list:
    """Write OUT/STEM_mask.png (class indices) and OUT/STEM_overlay.png for each input."""
    Image = import_pillow()
    os.makedirs(out, exist_ok=True)
    model.eval()
    written = []
    for path in inputs:
        if not os.path.isfile(path):
            raise ValueError(f"predict: input {path!r} is not a file")
        image = image_for_model(read_image(Image, Path(path)), model.config["in_channels"], path)
        with no_grad():
            labels = model.predict(Tensor(image[None], device=device))          # (1, H, W)
        mask = backend.to_numpy(labels.data)[0].astype(np.uint8)
        stem = os.path.join(out, Path(path).stem)
        save_mask_png(stem + "_mask.png", mask)
        Image.fromarray(overlay(image, mask)).save(stem + "_overlay.png")
        written += [stem + "_mask.png", stem + "_overlay.png"]
    return written
