"""What one pixel looked at: the gradient of its score with respect to the input image.

The network labels pixel q = (y, x) with the class c whose score (logit)
s_c(q) is largest. How much does each input pixel matter to that score?
The gradient answers to first order: d s_c(q) / d input[:, p] says how much
the score moves when pixel p's values move a little. One backward pass from
the single number s_c(q) gives it for every input pixel at once (the
"saliency map" of Simonyan, Vedaldi and Zisserman, 2013):

    x = Tensor(image[None], requires_grad=True)     # (1, C, H, W), normalised as in training
    logits = net(x)                                 # (1, K, H, W)
    logits[0, c, y, x].backward()                   # d (one number) / d (every input value)
    strength = abs(x.grad[0]).sum(axis=0)           # (H, W): how much each pixel matters

It is the same backward pass training runs, started from one pixel's score
instead of the loss, and stopped at the image instead of the weights.

Effective against theoretical receptive field. The theoretical field
(complexity.receptive_field) holds every input pixel the score CAN depend
on: 100 x 100 for the default U-Net. The gradient shows how much it DOES:
its mass sits near the pixel and fades fast, so the effective field is much
smaller (Luo, Li, Urtasun and Zemel, 2016). `mass_radius` measures it: the
smallest r such that the square of side 2r + 1 centred on the pixel holds
90% of the total |gradient|. Distance is Chebyshev, max(|dy|, |dx|), so
that radius r is a square, like the theoretical field it is compared with.

Large images. The score of q depends only on the input pixels within the
model's reach of q (tiling.py). So for an image larger than a tile the
gradient is computed on a window around q: q's row and column widened by
the tile margin on each side, starting on the pooling grid, exactly as a
tile of tiled prediction. The score and its gradient are then those of the
whole-image pass, in the memory of one tile, whatever the image's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyseg import backend
from tinyseg.complexity.receptive_fields import downsampling_period, round_up
from tinyseg.inspection.uncertainty import class_boundaries
from tinyseg.tensor import Tensor
from tinyseg.tiling import needs_tiles, pad_to_period, tile_margin

SHARE = 0.9              # the effective field holds this share of the gradient's mass


@dataclass
class PixelGradient:
    """The gradient of one pixel's winning score, over the part of the image it was computed on."""
    pixel: tuple                # (y, x) in the image
    label: int                  # the winning class at the pixel: the score differentiated
    window: tuple               # (rows, cols) slices of the image the gradient covers
    gradient: np.ndarray        # (C, h, w): d score / d normalised input, over the window

    @property
    def strength(self) -> np.ndarray:
        """(h, w) |gradient| summed over the channels: how much each pixel matters."""
        return np.abs(self.gradient).sum(axis=0)

    @property
    def centre(self) -> tuple:
        """The pixel's (y, x) inside the window."""
        return self.pixel[0] - self.window[0].start, self.pixel[1] - self.window[1].start


def input_gradient(net, x: np.ndarray, pixel: tuple, label: int | None = None,
                   device: str = "cpu") -> tuple[int, np.ndarray]:
    """(class, d logits[class, y, x] / d x as (C, H, W)) for one normalised image x (C, H, W).

    class: `label`, or (None) the winning class at the pixel. net runs as it
    is (eval mode for a trained model), with a graph: one forward, one backward.
    """
    inputs = Tensor(x[None], requires_grad=True, device=device)      # (1, C, H, W)
    logits = net(inputs)                                             # (1, K, H, W)
    y, x_ = pixel
    if label is None:
        label = int(backend.to_numpy(logits.data[0, :, y, x_]).argmax())
    logits[0, label, y, x_].backward()                               # one score, back to the image
    return label, backend.to_numpy(inputs.grad[0])                   # (C, H, W)


def pixel_gradient(predictor, image: np.ndarray, pixel: tuple) -> PixelGradient:
    """The gradient of the winning score at `pixel` of a (C, H, W) image as read, for a Predictor.

    The image is normalised as the predictor does; larger than a tile, it is
    cut to the window around the pixel (`gradient_window`).
    """
    net = predictor.network()
    rows, cols = gradient_window(predictor, net, image.shape[1:], pixel)
    x = pad_to_period(predictor.normalized(image), downsampling_period(net))   # (C, H', W')
    piece = np.ascontiguousarray(x[:, rows, cols])                             # (C, h, w)
    centre = (pixel[0] - rows.start, pixel[1] - cols.start)
    label, gradient = input_gradient(net, piece, centre, device=predictor.device)
    height, width = image.shape[1:]
    inside = (slice(rows.start, min(rows.stop, height)), slice(cols.start, min(cols.stop, width)))
    gradient = gradient[:, :inside[0].stop - rows.start, :inside[1].stop - cols.start]  # no padding
    return PixelGradient(tuple(pixel), label, inside, gradient)


def gradient_window(predictor, net, size: tuple, pixel: tuple) -> tuple[slice, slice]:
    """(rows, cols) to compute one pixel's gradient on: the whole image, or a tile around the pixel.

    An image no larger than the predictor's tile runs whole. A larger one:
    pixel -/+ the tile margin (at least the reach), from a multiple of the
    pooling period to a multiple of it or the end of the padded image.
    """
    if not needs_tiles(size, predictor.tile_size):
        return slice(0, size[0]), slice(0, size[1])
    margin = predictor.margin or tile_margin(net)
    spans = []
    for centre, length, reach, step in zip(pixel, size, margin, downsampling_period(net)):
        start = max(0, centre - reach) // step * step
        stop = min(round_up(length, step), round_up(centre + reach + 1, step))
        spans.append(slice(start, stop))
    return spans[0], spans[1]


def mass_radius(strength: np.ndarray, centre: tuple, share: float = SHARE) -> int | None:
    """The smallest r whose (2r + 1)-square around `centre` holds `share` of strength's total.

    strength (h, w) >= 0. Chebyshev distance: pixel (i, j) is at
    max(|i - y|, |j - x|). None when the total is 0 (nothing moves the score).
    """
    rows, cols = np.indices(strength.shape)
    distance = np.maximum(np.abs(rows - centre[0]), np.abs(cols - centre[1]))   # (h, w)
    by_distance = np.bincount(distance.ravel(), weights=strength.ravel())        # mass at each r
    cumulative = np.cumsum(by_distance)
    if not cumulative[-1] > 0:
        return None
    return int(np.searchsorted(cumulative, share * cumulative[-1]))              # first r reaching it


def boundary_pixel(labels: np.ndarray) -> tuple[int, int] | None:
    """The pixel on a class boundary nearest the image's centre, or None if there is one class only."""
    edge = np.argwhere(class_boundaries(labels))                                  # (n, 2)
    if len(edge) == 0:
        return None
    middle = (np.array(labels.shape) - 1) / 2
    nearest = edge[np.abs(edge - middle).sum(axis=1).argmin()]
    return int(nearest[0]), int(nearest[1])
