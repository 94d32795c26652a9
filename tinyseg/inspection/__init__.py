"""Looking inside a trained network: feature maps, what a pixel looked at, uncertainty.

    python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/

    from tinyseg.inspection import inspect_image
    seen = inspect_image(predictor, image)       # the numbers behind every picture

One question per file, each built on tinyseg's own pieces:

    feature_maps.py   each stage's output, recorded during one forward pass (recording.py)
    saliency.py       d (one pixel's winning score) / d (the image), by one backward pass
                      (autograd.py), against the receptive field (complexity/)
    uncertainty.py    softmax probabilities (predictor.py) and their per-pixel entropy
    report.py         all three on one image: inspect_image -> Inspection
    pictures.py       the panels of each PNG
    command.py        what `tinyseg inspect` does (commands/inspect.py): read, draw, print
"""

from tinyseg.inspection.feature_maps import centre_crop, channel_grid, stage_outputs
from tinyseg.inspection.report import Inspection, inspect_image
from tinyseg.inspection.saliency import (PixelGradient, boundary_pixel, input_gradient, mass_radius,
                                         pixel_gradient)
from tinyseg.inspection.uncertainty import class_boundaries, entropy, entropy_by_region

__all__ = ["Inspection", "PixelGradient", "boundary_pixel", "centre_crop", "channel_grid",
           "class_boundaries", "entropy", "entropy_by_region", "input_gradient", "inspect_image",
           "mass_radius", "pixel_gradient", "stage_outputs"]
