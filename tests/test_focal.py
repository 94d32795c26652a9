"""focal_loss and nn.FocalLoss: a per-pixel loop, gradients, gamma = 0 is cross-entropy, torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reference
from strategies import CrossEntropyCase, cross_entropy_cases
from tinyseg import Tensor, backend, gradcheck, nn
from tinyseg import functional as F

REDUCTIONS = ["mean", "sum", "none"]
gammas = st.floats(0.0, 5.0, allow_nan=False, allow_infinity=False)


def loss_of(case: CrossEntropyCase, gamma: float, device: str):
    """logits -> focal_loss(logits, target, gamma, ...) with the case's target, weights and options."""
    target = Tensor(case.target, device=device)
    weight = None if case.weight is None else Tensor(case.weight, device=device)
    return lambda logits: F.focal_loss(logits, target, gamma=gamma, weight=weight,
                                       ignore_index=case.ignore_index, reduction=case.reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15)
@given(data=st.data(), gamma=gammas)
def test_focal_loss_matches_per_pixel_loop(device, reduction, gamma, data):
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    loss = loss_of(case, gamma, device)(Tensor(case.logits, device=device))
    expected = reference.focal_loss(case.logits, case.target, gamma, case.weight, case.ignore_index,
                                    case.reduction)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=6)
@given(data=st.data(), gamma=st.sampled_from([0.0, 0.4, 1.0, 2.0, 4.5]))
def test_focal_loss_gradcheck(device, reduction, weighted, gamma, data):
    """float64 finite differences, with ignored pixels and, when weighted, class weights."""
    case = data.draw(cross_entropy_cases(reductions=[reduction], weighted=weighted))
    assert gradcheck(loss_of(case, gamma, device), Tensor(case.logits, device=device, requires_grad=True))


def test_gradient_is_g_times_softmax_minus_onehot(device):
    """The docstring's g = (1-p_t)^gamma - gamma p_t (1-p_t)^(gamma-1) log p_t, as written there."""
    rng = np.random.default_rng(0)
    x, t, gamma = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2]), 1.5
    logits = Tensor(x, device=device, requires_grad=True)
    F.focal_loss(logits, Tensor(t, device=device), gamma=gamma, reduction="sum").backward()
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    p_t = p[np.arange(5), t]
    g = (1 - p_t) ** gamma - gamma * p_t * (1 - p_t) ** (gamma - 1) * np.log(p_t)
    np.testing.assert_allclose(backend.to_numpy(logits.grad), g[:, None] * (p - np.eye(4)[t]),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=10)
@given(data=st.data())
def test_gamma_zero_is_cross_entropy_in_value_and_gradient(reduction, data):
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    focal_x, ce_x = Tensor(case.logits, requires_grad=True), Tensor(case.logits, requires_grad=True)
    focal = loss_of(case, 0.0, "cpu")(focal_x)
    ce = F.cross_entropy(ce_x, case.target, weight=case.weight, ignore_index=case.ignore_index,
                         reduction=reduction)
    np.testing.assert_allclose(focal.numpy(), ce.numpy(), rtol=1e-12, atol=1e-15)
    v = np.random.default_rng(0).standard_normal(focal.shape)
    focal.backward(v)
    ce.backward(v)
    np.testing.assert_allclose(focal_x.grad, ce_x.grad, rtol=1e-12, atol=1e-15)


@settings(max_examples=15)
@given(data=st.data(), gamma=gammas, more=gammas)
def test_loss_is_nonnegative_and_never_grows_with_gamma(data, gamma, more):
    """0 <= 1 - p_t <= 1, so (1 - p_t)^gamma can only shrink as gamma grows: pixel by pixel."""
    case = data.draw(cross_entropy_cases(reductions=["none"]))
    low, high = sorted([gamma, more])
    at_low = loss_of(case, low, "cpu")(Tensor(case.logits)).numpy()
    at_high = loss_of(case, high, "cpu")(Tensor(case.logits)).numpy()
    assert (at_high >= 0).all()
    assert (at_high <= at_low * (1 + 1e-12) + 1e-300).all()


@settings(max_examples=10)
@given(data=st.data(), gamma=gammas)
def test_ignored_pixels_change_nothing(data, gamma):
    """Rewriting the logits of ignored pixels leaves every loss and the other gradients unchanged."""
    case = data.draw(cross_entropy_cases(reductions=["sum"]))
    before = Tensor(case.logits, requires_grad=True)
    loss_of(case, gamma, "cpu")(before).backward()
    changed = case.logits.copy()
    ignored = case.target == case.ignore_index
    moved = np.moveaxis(changed, 1, -1)                         # (N, [H, W,] C) view of `changed`
    moved[ignored] = 10 * np.random.default_rng(0).standard_normal(moved[ignored].shape)
    after = Tensor(changed, requires_grad=True)
    loss = loss_of(case, gamma, "cpu")(after)
    loss.backward()
    assert loss.item() == pytest.approx(loss_of(case, gamma, "cpu")(Tensor(case.logits)).item(), rel=1e-12)
    np.testing.assert_array_equal(after.grad, before.grad)
    assert not np.moveaxis(after.grad, 1, -1)[ignored].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_confident_logits_give_finite_loss_and_gradient(device, gamma, dtype):
    """A margin of 1e3: p_t rounds to 1 (right) or to 0 (wrong); (1-p_t)^(gamma-1) never shows up."""
    logits = np.array([[1e3, 0.0, 0.0], [0.0, 1e3, 0.0]], dtype=dtype)   # both predict their argmax
    target = np.array([0, 2])                                        # row 0 right, row 1 wrong
    x = Tensor(logits, device=device, requires_grad=True)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        losses = F.focal_loss(x, Tensor(target, device=device), gamma=gamma, reduction="none")
        losses.backward(np.ones(2, dtype=dtype))
    grad = backend.to_numpy(x.grad)
    assert np.isfinite(losses.numpy()).all() and np.isfinite(grad).all()
    assert losses.numpy()[0] == 0 and not grad[0].any()             # right and sure: nothing to learn
    assert losses.numpy()[1] == pytest.approx(1e3, rel=1e-6)         # wrong: (1 - 0)^gamma * 1000
    np.testing.assert_allclose(grad[1], [0.0, 1.0, -1.0], atol=1e-6)  # g = 1: p - onehot


def test_weighted_mean_divides_by_the_sum_of_the_pixels_class_weights():
    """Zero logits: every p_t = 1/2, each loss is (1/2)^gamma log 2; the mean is weighted, not / N."""
    logits, target, weight = Tensor(np.zeros((3, 2))), np.array([0, 1, 1]), np.array([1.0, 3.0])
    each = 0.5 ** 2 * math.log(2)
    assert F.focal_loss(logits, target, weight=weight).item() == pytest.approx(each * 7 / 7)
    assert F.focal_loss(logits, target, weight=weight, reduction="sum").item() == pytest.approx(each * 7)
    uneven = Tensor(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]))
    losses = F.focal_loss(uneven, target, reduction="none").numpy()
    mean = F.focal_loss(uneven, target, weight=weight).item()
    assert mean == pytest.approx((losses[0] * 1 + losses[1] * 3 + losses[2] * 3) / 7)


@pytest.mark.parametrize("reduction, value", [("mean", math.nan), ("sum", 0.0)])
def test_all_targets_ignored(reduction, value):
    """As cross_entropy: the mean over nothing is 0/0 = nan, the sum is 0."""
    loss = F.focal_loss(Tensor(np.ones((2, 3, 2, 2))), np.full((2, 2, 2), -100), reduction=reduction)
    np.testing.assert_equal(loss.item(), value)


def test_float32_logits_give_a_float32_loss_and_gradient():
    logits = Tensor(np.zeros((2, 3, 2, 2)), dtype=np.float32, requires_grad=True)
    loss = F.focal_loss(logits, np.zeros((2, 2, 2), dtype=np.int64), gamma=0.5)
    assert loss.dtype == np.float32
    loss.backward()
    assert logits.grad.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), gamma=-1), "focal_loss: gamma must be a finite number >= 0, got -1"),
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), gamma=math.nan), "focal_loss: gamma must be .* got nan"),
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), gamma=math.inf), "focal_loss: gamma must be .* got inf"),
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), gamma="2"), "focal_loss: gamma must be .* got '2'"),
    (lambda x: F.focal_loss(x, np.zeros((2, 3), int)), r"focal_loss: target has shape \(2, 3\), expected \(2, 4, 4\)"),
    (lambda x: F.focal_loss(x, np.full((2, 4, 4), 3)), r"focal_loss: target holds labels \[3\]"),
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), weight=[1, 2]), r"focal_loss: weight has shape \(2,\)"),
    (lambda x: F.focal_loss(x, np.zeros((2, 4, 4), int), reduction="avg"), "focal_loss: reduction"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(Tensor(np.zeros((2, 3, 4, 4))))


def torch_focal_loss(torch, logits, target, gamma, weight, ignore_index, reduction):
    """-(1 - p_t)^gamma log p_t in a few torch ops (torch has no multi-class focal loss)."""
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_pt = torch.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    pt = log_pt.exp()
    w = valid.to(logits.dtype) if weight is None else valid.to(logits.dtype) * weight[safe]
    losses = -(1 - pt) ** gamma * log_pt * w
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / w.sum()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=8)
@given(data=st.data(), gamma=gammas)
def test_focal_loss_matches_torch_autograd(reduction, gamma, data):
    torch = pytest.importorskip("torch")
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    assume(case.logits.shape[1] >= 2)        # one class: p_t = 1, and torch's (1-p_t)**0.5 gives nan
    ours = Tensor(case.logits, requires_grad=True)
    theirs = torch.tensor(case.logits, requires_grad=True)
    weight = None if case.weight is None else torch.tensor(case.weight)
    out = loss_of(case, gamma, "cpu")(ours)
    expected = torch_focal_loss(torch, theirs, torch.tensor(case.target), gamma, weight,
                                case.ignore_index, reduction)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(v)
    expected.backward(torch.tensor(v))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------- nn.FocalLoss
RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((2, 3, 4, 5))
TARGET = RNG.integers(0, 3, size=(2, 4, 5))
TARGET[0, 0] = 255                                              # a row of ignored pixels
WEIGHT = np.array([0.5, 1.0, 3.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_loss_module_is_the_functional(reduction):
    module = nn.FocalLoss(gamma=1.5, weight=WEIGHT, ignore_index=255, reduction=reduction)
    expected = F.focal_loss(Tensor(LOGITS), TARGET, gamma=1.5, weight=WEIGHT, ignore_index=255,
                            reduction=reduction)
    np.testing.assert_array_equal(module(Tensor(LOGITS), TARGET).numpy(), expected.numpy())


def test_focal_loss_module_defaults_buffer_and_repr():
    module = nn.FocalLoss()
    assert (module.gamma, module.weight, module.ignore_index, module.reduction) == (2.0, None, -100, "mean")
    weighted = nn.FocalLoss(gamma=0.5, weight=[1.0, 2.0, 3.0])
    assert [name for name, _ in weighted.named_buffers()] == ["weight"]
    assert "gamma=0.5, weight=[1.0, 2.0, 3.0]" in repr(weighted)
