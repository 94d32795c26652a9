"""dice_loss: values against a per-pixel loop, gradients, ignore_index, absent classes, torch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dice
from strategies import CrossEntropyCase, cross_entropy_cases
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F

REDUCTIONS = ["mean", "sum", "none"]


def loss_of(case: CrossEntropyCase, smooth: float, device: str):
    """logits -> dice_loss(logits, target, ...) with the case's target, weights and options."""
    target = Tensor(case.target, device=device)
    weight = None if case.weight is None else Tensor(case.weight, device=device)
    return lambda logits: F.dice_loss(logits, target, weight=weight, ignore_index=case.ignore_index,
                                      smooth=smooth, reduction=case.reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15)
@given(data=st.data(), smooth=st.sampled_from([0.0, 1.0, 0.3]))
def test_dice_matches_per_pixel_loop(device, reduction, smooth, data):
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    loss = loss_of(case, smooth, device)(Tensor(case.logits, device=device))
    expected = reference_dice.dice_loss(case.logits, case.target, case.weight, case.ignore_index,
                                        smooth, case.reduction)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=8)
@given(data=st.data(), smooth=st.sampled_from([0.0, 1.0]))
def test_dice_gradcheck(device, reduction, smooth, data):
    """float64 finite differences, with ignored pixels, weights and (often) absent classes."""
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    assert gradcheck(loss_of(case, smooth, device), Tensor(case.logits, device=device, requires_grad=True))


@settings(max_examples=10)
@given(data=st.data())
def test_dice_is_between_zero_and_one_and_ignores_ignored_pixels(data):
    """0 <= loss_c <= 1, and rewriting the logits of ignored pixels changes nothing."""
    case = data.draw(cross_entropy_cases(reductions=["none"], weighted=False))
    loss = loss_of(case, 1.0, "cpu")
    before = loss(Tensor(case.logits)).numpy()
    assert (before >= -1e-12).all() and (before <= 1 + 1e-12).all()
    changed = case.logits.copy()
    ignored = case.target == case.ignore_index
    moved = np.moveaxis(changed, 1, -1)                         # (N, [H, W,] C) view of `changed`
    moved[ignored] = 10 * np.random.default_rng(0).standard_normal(moved[ignored].shape)
    np.testing.assert_allclose(loss(Tensor(changed)).numpy(), before, rtol=1e-12, atol=1e-12)


def test_gradient_of_ignored_pixels_is_zero(device):
    rng = np.random.default_rng(1)
    target = np.array([[[0, 255], [255, 2]]])                     # (1, 2, 2), two pixels ignored
    logits = Tensor(rng.standard_normal((1, 3, 2, 2)), device=device, requires_grad=True)
    F.dice_loss(logits, Tensor(target, device=device), ignore_index=255).backward()
    grad = backend.to_numpy(logits.grad)
    assert not grad[0, :, 0, 1].any() and not grad[0, :, 1, 0].any()
    assert grad[0, :, 0, 0].any() and grad[0, :, 1, 1].any()


def test_perfect_prediction_gives_zero_and_absent_unpredicted_class_costs_nothing():
    """Confident, correct logits: every dice_c -> 1 (class 2 is absent from target and prediction)."""
    target = np.array([[0, 1], [1, 0]])                           # (2, 2): classes 0 and 1 only
    logits = 50.0 * (np.eye(3)[target].transpose(0, 2, 1) * 2 - 1)    # (2, 3, 2): huge margin
    per_class = F.dice_loss(Tensor(logits), target, reduction="none").numpy()
    np.testing.assert_allclose(per_class, 0.0, atol=1e-12)


def test_absent_but_predicted_class_is_penalised():
    """Class 1 never labelled, yet predicted everywhere: dice_1 = s / (P_1 + s) is small."""
    target = np.zeros((1, 4), dtype=np.int64)                     # (N=1, 4 pixels), all class 0
    logits = np.zeros((1, 2, 4))
    logits[0, 1] = 50.0                                           # p(class 1) ~ 1 at every pixel
    per_class = F.dice_loss(Tensor(logits[:, :, :, None]), target[:, :, None], reduction="none").numpy()
    assert per_class[1] == pytest.approx(1 - 1 / (4 + 1), abs=1e-9)   # P_1 = 4, s = 1


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_with_smooth_zero_is_zero_with_zero_gradient(reduction):
    logits = Tensor(np.random.default_rng(2).standard_normal((2, 3, 2, 2)), requires_grad=True)
    loss = F.dice_loss(logits, np.full((2, 2, 2), 255), ignore_index=255, smooth=0.0, reduction=reduction)
    np.testing.assert_equal(loss.numpy(), np.zeros(loss.shape))
    loss.backward(np.ones(loss.shape))
    assert not logits.grad.any()


def test_weighted_mean_divides_by_the_sum_of_class_weights():
    rng = np.random.default_rng(3)
    logits, target, weight = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1]), np.array([1.0, 2.0, 5.0])
    per_class = F.dice_loss(Tensor(logits), target, reduction="none").numpy()
    mean = F.dice_loss(Tensor(logits), target, weight=weight).item()
    total = F.dice_loss(Tensor(logits), target, weight=weight, reduction="sum").item()
    assert mean == pytest.approx((weight * per_class).sum() / weight.sum())
    assert total == pytest.approx((weight * per_class).sum())


def test_float32_logits_give_a_float32_loss_and_gradient():
    logits = Tensor(np.zeros((2, 3, 2, 2)), dtype=np.float32, requires_grad=True)
    loss = F.dice_loss(logits, np.zeros((2, 2, 2), dtype=np.int64))
    assert loss.dtype == np.float32
    loss.backward()
    assert logits.grad.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda x: F.dice_loss(x, np.zeros((2, 3), int)), r"dice_loss: target has shape \(2, 3\), expected \(2, 4, 4\)"),
    (lambda x: F.dice_loss(x, np.zeros((2, 4, 4))), "dice_loss: target must hold integer"),
    (lambda x: F.dice_loss(x, np.full((2, 4, 4), 3)), r"dice_loss: target holds labels \[3\]"),
    (lambda x: F.dice_loss(x, np.zeros((2, 4, 4), int), weight=[1, 2]), r"dice_loss: weight has shape \(2,\)"),
    (lambda x: F.dice_loss(x, np.zeros((2, 4, 4), int), smooth=-1), "dice_loss: smooth must be"),
    (lambda x: F.dice_loss(x, np.zeros((2, 4, 4), int), reduction="avg"), "dice_loss: reduction"),
    (lambda x: F.dice_loss(Tensor(np.zeros(3)), np.zeros(3, int)), r"dice_loss: input must be \(N, C\)"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(Tensor(np.zeros((2, 3, 4, 4))))


def torch_dice_loss(torch, logits, target, weight, ignore_index, smooth, reduction):
    """The same formula in a few torch ops, differentiated by torch's autograd."""
    classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)            # (N, 1, ...)
    safe = torch.where(target == ignore_index, torch.zeros_like(target), target)
    onehot = torch.nn.functional.one_hot(safe, classes).movedim(-1, 1).to(logits.dtype) * valid
    p = torch.softmax(logits, dim=1) * valid
    axes = [0] + list(range(2, logits.ndim))
    dice = (2 * (p * onehot).sum(axes) + smooth) / (p.sum(axes) + onehot.sum(axes) + smooth)
    w = torch.ones(classes, dtype=logits.dtype) if weight is None else weight
    losses = w * (1 - dice)
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / w.sum()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=8)
@given(data=st.data())
def test_dice_matches_torch_autograd(reduction, data):
    torch = pytest.importorskip("torch")
    case = data.draw(cross_entropy_cases(reductions=[reduction]))
    ours = Tensor(case.logits, requires_grad=True)
    theirs = torch.tensor(case.logits, requires_grad=True)
    weight = None if case.weight is None else torch.tensor(case.weight)
    out = loss_of(case, 1.0, "cpu")(ours)
    expected = torch_dice_loss(torch, theirs, torch.tensor(case.target), weight, case.ignore_index,
                               1.0, reduction)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(v)
    expected.backward(torch.tensor(v))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
