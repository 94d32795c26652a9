"""batch_norm's closed-form forward and backward (tinyseg/functional/normalization.py) stay accurate.

The backward uses sum(gy * x) - mean * sum(gy) for sum(gy * (x - mean)); in
float32 that could cancel when a channel's mean is far from zero. These
tests hold float32 to float64 on such a channel, and the no-xhat backward
to finite differences where the weight alone learns.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
       relu=st.booleans(), training=st.booleans(), seed=st.integers(0, 2**16))
def test_backward_leaves_the_gradient_it_is_given_unchanged(shape, relu, training, seed):
    """batch_norm_relu's backward writes dL/dx over its own masked copy of dL/dy, never over dL/dy
    itself, which autograd may also have handed to a retained tensor (and the caller still holds)."""
    n, c, h, w = shape
    assume(not training or n * h * w >= 2)
    rng = np.random.default_rng(seed)
    x = tinyseg.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    weight, bias = (tinyseg.Tensor(rng.standard_normal(c).astype(np.float32), requires_grad=True)
                    for _ in range(2))
    mean, var = tinyseg.Tensor(np.zeros(c, np.float32)), tinyseg.Tensor(np.ones(c, np.float32))
    op = F.batch_norm_relu if relu else F.batch_norm
    textbook = F.batch_norm_relu_textbook if relu else F.batch_norm_textbook
    gy = rng.standard_normal(shape).astype(np.float32)
    given = gy.copy()
    y = op(x, mean, var, weight, bias, training=training)
    y.retain_grad()
    y.backward(gy)
    np.testing.assert_array_equal(gy, given)
    np.testing.assert_array_equal(y.grad, given)
    fused_gx = x.grad
    x.grad = None
    textbook(x, mean, var, weight, bias, training=training).backward(given)
    np.testing.assert_allclose(fused_gx, x.grad, rtol=1e-4, atol=1e-4)
