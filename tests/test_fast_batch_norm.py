"""batch_norm's closed-form forward and backward (tinyseg/functional/normalization.py) stay accurate.

The backward uses sum(gy * x) - mean * sum(gy) for sum(gy * (x - mean)); in
float32 that could cancel when a channel's mean is far from zero. These
tests hold float32 to float64 on such a channel, and the no-xhat backward
to finite differences where the weight alone learns.
"""

from __future__ import annotations

import numpy as np

import tinyseg
from tinyseg import functional as F
from tinyseg import gradcheck


def run(dtype, x, gy, w, b):
    tensors = [tinyseg.Tensor(a.astype(dtype), requires_grad=True) for a in (x, w, b)]
    y = F.batch_norm(tensors[0], None, None, tensors[1], tensors[2], training=True)
    y.backward(gy.astype(dtype))
    return [y.numpy()] + [t.grad for t in tensors]


def test_float32_batch_norm_is_close_to_float64_when_the_mean_is_25_std_from_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 16, 16)) * 2 + 50
    gy, w, b = rng.standard_normal(x.shape), rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    for exact, single in zip(run(np.float64, x, gy, w, b), run(np.float32, x, gy, w, b)):
        assert np.abs(single - exact).max() <= 1e-4 * np.abs(exact).max()


def test_eval_mode_weight_gradient_by_finite_differences():
    rng = np.random.default_rng(1)
    x = tinyseg.Tensor(rng.standard_normal((2, 3, 4, 4)) + 3)
    mean, var = tinyseg.Tensor(rng.standard_normal(3)), tinyseg.Tensor(rng.uniform(0.5, 2, 3))
    w = tinyseg.Tensor(rng.uniform(0.5, 1.5, 3), requires_grad=True)
    assert gradcheck(lambda w: F.batch_norm(x, mean, var, w, None, training=False), w)
