"""Everything `tinyseg inspect` measures on one image, as numbers (no files).

    from tinyseg.inspection import inspect_image
    seen = inspect_image(predictor, image)           # image (C, H, W) as read
    seen.feature_maps["encoder.0"].shape             # (16, 64, 64)
    seen.effective_radius, seen.field                # 7, (100, 100)
    seen.boundary_entropy, seen.interior_entropy     # 0.41, 0.02

Three questions, one file each:

    feature_maps.py   what each stage computes: its output, channel by channel
    saliency.py       what one pixel looked at: the gradient of its score,
                      against the theoretical receptive field
    uncertainty.py    how sure the model is: softmax probabilities and their entropy

The image goes through the predictor exactly as `predict` sends it
(normalised, the model's inference form, in eval mode), so the pictures are
of the network that labels the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyseg.complexity import downsampling_period, receptive_field
from tinyseg.inspection.feature_maps import centre_crop, stage_outputs
from tinyseg.inspection.saliency import PixelGradient, boundary_pixel, mass_radius, pixel_gradient
from tinyseg.inspection.uncertainty import entropy, entropy_by_region


@dataclass
class Inspection:
    """What inspect_image found. Arrays are NumPy; (H, W) is the image's size."""
    feature_window: tuple        # (rows, cols) of the image the feature maps were recorded on
    feature_maps: dict           # {stage: (C, h, w) output}, in forward order
    gradient: PixelGradient      # the pixel, its class, the gradient over its window
    chosen: str                  # how the pixel was chosen: "given", "boundary" or "centre"
    effective_radius: int | None     # the 90% radius of the gradient (saliency.mass_radius)
    field: tuple                 # (rows, cols): the theoretical receptive field (complexity)
    probabilities: np.ndarray    # (K, H, W) softmax, summing to 1 at each pixel
    labels: np.ndarray           # (H, W) the most probable class
    entropy: np.ndarray          # (H, W) -sum p log p
    boundary_entropy: float      # mean entropy on class boundaries (NaN if there are none)
    interior_entropy: float      # mean entropy elsewhere


def inspect_image(predictor, image: np.ndarray, pixel: tuple | None = None) -> Inspection:
    """Feature maps, one pixel's gradient and the uncertainty of a Predictor on a (C, H, W) image.

    pixel: (y, x) whose score is differentiated; None picks the boundary
    pixel nearest the centre (saliency.boundary_pixel), or the centre itself
    when the model sees one class only.
    """
    net = predictor.network()
    probabilities = predictor.probabilities(image)                      # (K, H, W)
    labels = probabilities.argmax(axis=0)                               # (H, W)
    entropies = entropy(probabilities)
    chosen = "given"
    if pixel is None:
        pixel, chosen = boundary_pixel(labels), "boundary"
    if pixel is None:                                                   # one class everywhere
        pixel, chosen = (image.shape[1] // 2, image.shape[2] // 2), "centre"
    gradient = pixel_gradient(predictor, image, pixel)
    rows, cols = centre_crop(image.shape[1:], downsampling_period(net))
    maps = stage_outputs(net, predictor.normalized(image[:, rows, cols]), predictor.device)
    boundary, interior = entropy_by_region(entropies, labels)
    return Inspection(feature_window=(rows, cols), feature_maps=maps, gradient=gradient,
                      chosen=chosen,
                      effective_radius=mass_radius(gradient.strength, gradient.centre),
                      field=receptive_field(net), probabilities=probabilities, labels=labels,
                      entropy=entropies, boundary_entropy=boundary, interior_entropy=interior)
