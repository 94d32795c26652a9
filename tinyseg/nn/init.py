"""Weight initialisation: He (Kaiming) normal, drawn from a seeded NumPy Generator.

Why the scale matters. A convolution output pixel sums fan_in products
w * x (fan_in = in_channels * kh * kw). With independent weights of variance
s^2 and inputs with E[x^2] = q,

    Var(y) = fan_in * s^2 * q.

After a ReLU, half of a zero-mean y is cut away, so the next layer sees
E[x^2] = Var(y) / 2. To keep that second moment the same from layer to
layer (neither exploding nor vanishing through 20 layers), He et al. (2015)
choose

    s^2 = 2 / fan_in,      i.e.   w ~ Normal(0, sqrt(2 / fan_in)).

Determinism. Every layer takes an `rng`: an int seed, a numpy.random.Generator,
or None (fresh randomness). A model makes one Generator from its seed and
hands it to its layers in construction order, so the same seed always gives
the same weights. Weights are drawn in float64 on the host and then cast, so
a float32 and a float64 model built from one seed hold the same numbers.
"""

from __future__ import annotations

import math

import numpy as np


def make_rng(rng=None) -> np.random.Generator:
    """An int seed, a Generator (returned as is) or None -> a numpy Generator."""
    return np.random.default_rng(rng)


def kaiming_normal(shape: tuple, fan_in: float, rng=None, dtype=np.float32) -> np.ndarray:
    """A host array of `shape` drawn from Normal(0, sqrt(2 / fan_in)) (He init for ReLU)."""
    if fan_in <= 0:
        raise ValueError(f"kaiming_normal: fan_in must be positive, got {fan_in} for shape {shape}")
    std = math.sqrt(2.0 / fan_in)
    return (make_rng(rng).standard_normal(shape) * std).astype(dtype)


def conv_fan_in(weight_shape: tuple) -> int:
    """Inputs summed by one output of a conv (or linear) layer: shape[1] * kh * kw.

    Conv weight (O, C, kh, kw): C * kh * kw. Linear weight (out, in): in.
    """
    fan_in = weight_shape[1]
    for size in weight_shape[2:]:
        fan_in *= size
    return int(fan_in)


def conv_transpose_fan_in(weight_shape: tuple, stride: tuple) -> float:
    """Inputs summed by one output pixel of a transpose conv, on average.

    Weight (C_in, C_out, kh, kw): each input pixel paints a kh x kw patch,
    patches `stride` apart, so an output pixel is covered by about
    (kh / sh) * (kw / sw) input pixels, each bringing C_in terms. For the
    U-Net's 2x2 stride-2 upsampling that is exactly C_in.
    """
    c_in, _, kh, kw = weight_shape
    return max(1.0, c_in * (kh / stride[0]) * (kw / stride[1]))
