"""relu, softmax, log_softmax and pad: values against plain definitions, and gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from strategies import arrays_and_dim, arrays_and_pads, away_from_zero, normal_arrays, shapes
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F


# ----------------------------------------------------------------- relu
@settings(max_examples=20)
@given(x=shapes(min_dims=1).flatmap(normal_arrays))
def test_relu_is_max_of_x_and_zero(device, x):
    np.testing.assert_array_equal(F.relu(Tensor(x, device=device)).numpy(), np.where(x > 0, x, 0.0))


@settings(max_examples=20)
@given(x=shapes(min_dims=1).flatmap(away_from_zero))
def test_relu_gradcheck_away_from_zero(device, x):
    assert gradcheck(F.relu, Tensor(x, device=device, requires_grad=True))


def test_relu_gradient_at_zero_is_zero_as_in_pytorch(device):
    x = Tensor(np.array([-1.0, 0.0, 2.0]), device=device, requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [0.0, 0.0, 1.0])


# ----------------------------------------------------------------- softmax family
@settings(max_examples=25)
@given(case=arrays_and_dim())
def test_softmax_and_log_softmax_match_the_definition(device, case):
    x, dim = case
    np.testing.assert_allclose(F.softmax(Tensor(x, device=device), dim).numpy(), reference.softmax(x, dim),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax(Tensor(x, device=device), dim).numpy(),
                               reference.log_softmax(x, dim), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(case=arrays_and_dim())
def test_softmax_gradcheck(device, case):
    x, dim = case
    assert gradcheck(lambda x: F.softmax(x, dim), Tensor(x, device=device, requires_grad=True))


@settings(max_examples=20)
@given(case=arrays_and_dim())
def test_log_softmax_gradcheck(device, case):
    x, dim = case
    assert gradcheck(lambda x: F.log_softmax(x, dim), Tensor(x, device=device, requires_grad=True))


def test_softmax_sums_to_one_and_survives_huge_scores(device):
    x = Tensor(np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]]), device=device)
    p = F.softmax(x, dim=1).numpy()
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    log_p = F.log_softmax(x, dim=1).numpy()
    assert np.isfinite(log_p).all() and log_p[1, 0] == pytest.approx(-2e4)


def test_softmax_default_dim_is_the_class_axis_of_nchw():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(F.softmax(Tensor(x)).numpy().sum(axis=1), np.ones((2, 4, 5)))


# ----------------------------------------------------------------- pad
def numpy_pad_widths(ndim, pad):
    """torch's (left, right, top, bottom, ...) -> NumPy's ((before, after) per axis, first axis first)."""
    widths = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        widths[ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return widths


@settings(max_examples=20)
@given(case=arrays_and_pads(), value=st.sampled_from([0.0, -1.5]))
def test_pad_matches_numpy_constant_pad(device, case, value):
    x, pad = case
    expected = np.pad(x, numpy_pad_widths(x.ndim, pad), constant_values=value)
    np.testing.assert_array_equal(F.pad(Tensor(x, device=device), pad, value).numpy(), expected)


def test_pad_order_is_left_right_top_bottom_for_nchw():
    y = F.pad(Tensor(np.ones((1, 1, 2, 3))), (1, 2, 3, 0))
    assert y.shape == (1, 1, 2 + 3 + 0, 3 + 1 + 2)
    assert y.numpy()[0, 0, 3:, 1:4].tolist() == [[1, 1, 1], [1, 1, 1]]


@settings(max_examples=20)
@given(case=arrays_and_pads())
def test_pad_gradcheck(device, case):
    x, pad = case
    assert gradcheck(lambda x: F.pad(x, pad, value=2.0), Tensor(x, device=device, requires_grad=True))
