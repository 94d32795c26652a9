"""cross_entropy: values against a per-pixel loop, gradients, ignore_index and class weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from strategies import CrossEntropyCase, cross_entropy_cases
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F


def loss_of(case: CrossEntropyCase, device: str):
    """logits -> cross_entropy(logits, target, ...) with the case's target, weights and options."""
    target = Tensor(case.target, device=device)
    weight = None if case.weight is None else Tensor(case.weight, device=device)
    return lambda logits: F.cross_entropy(logits, target, weight=weight, ignore_index=case.ignore_index,
                                          reduction=case.reduction)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=12)
@given(data=st.data())
def test_cross_entropy_matches_per_pixel_loop(device, reduction, weighted, data):
    case = data.draw(cross_entropy_cases(reductions=[reduction], weighted=weighted))
    loss = loss_of(case, device)(Tensor(case.logits, device=device))
    expected = reference.cross_entropy(case.logits, case.target, case.weight, case.ignore_index,
                                       case.reduction)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=10)
@given(data=st.data())
def test_cross_entropy_gradcheck(device, reduction, weighted, data):
    case = data.draw(cross_entropy_cases(reductions=[reduction], weighted=weighted))
    assert gradcheck(loss_of(case, device), Tensor(case.logits, device=device, requires_grad=True))


def test_gradient_is_softmax_minus_onehot_over_n(device):
    """d mean_i(-log softmax(x_i)_{t_i}) / dx_i = (softmax(x_i) - onehot(t_i)) / N."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    logits = Tensor(x, device=device, requires_grad=True)
    F.cross_entropy(logits, Tensor(t, device=device)).backward()
    np.testing.assert_allclose(backend.to_numpy(logits.grad),
                               (reference.softmax(x) - np.eye(4)[t]) / 5, rtol=1e-12, atol=1e-15)


def test_ignored_pixels_get_no_loss_and_no_gradient(device):
    rng = np.random.default_rng(1)
    target = np.array([[[0, 255], [255, 2]]])                       # (1, 2, 2), two pixels ignored
    logits = Tensor(rng.standard_normal((1, 3, 2, 2)), device=device, requires_grad=True)
    losses = F.cross_entropy(logits, Tensor(target, device=device), ignore_index=255, reduction="none")
    assert losses.numpy()[0, 0, 1] == 0 and losses.numpy()[0, 1, 0] == 0
    F.cross_entropy(logits, Tensor(target, device=device), ignore_index=255).backward()
    grad = backend.to_numpy(logits.grad)
    assert not grad[0, :, 0, 1].any() and not grad[0, :, 1, 0].any()
    assert grad[0, :, 0, 0].any() and grad[0, :, 1, 1].any()


def test_weighted_mean_divides_by_the_sum_of_weights_of_counted_targets(device):
    """PyTorch's definition: sum_i w[t_i] loss_i / sum_i w[t_i], not / N."""
    logits = Tensor(np.zeros((3, 2)), device=device)                # every loss is log 2
    target, weight = Tensor(np.array([0, 1, 1]), device=device), Tensor(np.array([1.0, 3.0]), device=device)
    loss = F.cross_entropy(logits, target, weight=weight)
    assert loss.item() == pytest.approx(math.log(2) * (1 + 3 + 3) / (1 + 3 + 3))
    total = F.cross_entropy(logits, target, weight=weight, reduction="sum")
    assert total.item() == pytest.approx(math.log(2) * 7)


@pytest.mark.parametrize("reduction, value", [("mean", math.nan), ("sum", 0.0)])
def test_all_targets_ignored(device, reduction, value):
    """Mean over nothing is 0/0 = nan, as in PyTorch; the sum is 0."""
    logits = Tensor(np.ones((2, 3, 2, 2)), device=device)
    loss = F.cross_entropy(logits, Tensor(np.full((2, 2, 2), -100), device=device), reduction=reduction)
    np.testing.assert_equal(loss.item(), value)


def test_huge_logits_give_a_finite_loss_and_gradient(device):
    """Computed through log-sum-exp: e^{10000} never appears."""
    logits = Tensor(np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]]), device=device, requires_grad=True)
    loss = F.cross_entropy(logits, Tensor(np.array([1, 2]), device=device))
    assert loss.item() == pytest.approx((1e4 + math.log(2)) / 2)
    loss.backward()
    assert np.isfinite(backend.to_numpy(logits.grad)).all()


def test_float32_logits_give_a_float32_loss_and_gradient(device):
    logits = Tensor(np.zeros((2, 3, 2, 2)), dtype=np.float32, device=device, requires_grad=True)
    loss = F.cross_entropy(logits, Tensor(np.zeros((2, 2, 2), dtype=np.int64), device=device))
    assert loss.dtype == np.float32
    loss.backward()
    assert logits.grad.dtype == np.float32


def test_target_and_weight_may_be_tensors_arrays_or_lists():
    logits = Tensor(np.random.default_rng(2).standard_normal((3, 4)))
    as_tensors = F.cross_entropy(logits, Tensor(np.array([0, 3, 2])), weight=Tensor(np.array([1., 2, 3, 4])))
    as_arrays = F.cross_entropy(logits, np.array([0, 3, 2]), weight=np.array([1., 2, 3, 4]))
    as_lists = F.cross_entropy(logits, [0, 3, 2], weight=[1., 2, 3, 4])
    assert as_tensors.item() == as_arrays.item() == as_lists.item()


def test_true_class_positions_index_the_flattened_logits():
    """The docstring's example, then every pixel of a random (N, C, H, W) case against a loop."""
    from tinyseg.functional.loss import true_class_positions
    target = np.array([[[2, 0], [1, 1]]])                                # N=1, H=W=2
    assert true_class_positions(target, 3).tolist() == [[8, 1, 6, 7]]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2, 7))
    target = rng.integers(0, 5, size=(3, 2, 7))
    picked = np.take(x, true_class_positions(target, 5)).reshape(target.shape)
    for n, h, w in np.ndindex(target.shape):
        assert picked[n, h, w] == x[n, target[n, h, w], h, w]
