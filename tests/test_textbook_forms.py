"""Each fused operator equals its textbook form, built of Tensor operations, in value and gradient.

    cross_entropy  = cross_entropy_textbook     log_softmax, the true class by a one-hot mask, mean
    batch_norm     = batch_norm_textbook        mean, variance, normalise, scale
    dice_loss      = dice_loss_textbook         softmax, masked sums, the ratio, mean over classes
    focal_loss     = focal_loss_textbook        log_softmax, (1 - p_t)^gamma, mean
    conv2d_relu    = conv2d_relu_textbook       conv2d, then relu
    batch_norm_relu = batch_norm_relu_textbook  batch_norm_textbook, then relu

Hypothesis draws the shapes (classification (N, C) and segmentation
(N, C, H, W)), ignored labels (ignore_index may be a real class), class
weights and reductions, and the convolutions' geometry; the values are float64, and the two forms must agree
to 1e-10, far tighter than a finite-difference check. The gradient compared
is that of <v, f(x)> for a drawn v, so every output element counts.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strategies import conv_configs, cross_entropy_cases, normal_arrays, seeds
from tinyseg import Tensor, autograd, backend
from tinyseg import functional as F
from tinyseg.functional import sample_threads

TOLERANCE = dict(rtol=1e-10, atol=1e-12)


def value_and_grads(fn, inputs: list, seed: int):
    """f(inputs) as an array, and the gradients of <v, f(inputs)> for a random v, one per input."""
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(out.xp.asarray(v) if out.ndim else float(v))
    return out.numpy(), [None if t.grad is None else backend.to_numpy(t.grad) for t in inputs]


def check_the_forms_agree(fused, textbook, inputs: list, seed: int = 0) -> None:
    """fused and textbook give equal values and equal gradients for every input."""
    value, grads = value_and_grads(fused, inputs, seed)
    textbook_value, textbook_grads = value_and_grads(textbook, inputs, seed)
    assert np.shape(value) == np.shape(textbook_value)
    np.testing.assert_allclose(textbook_value, value, **TOLERANCE)
    for got, want in zip(textbook_grads, grads):
        np.testing.assert_allclose(got, want, **TOLERANCE)


def operations(root: Tensor) -> set:
    """The names of the operations in the graph that ends at root."""
    return {entry.op for entry in autograd.topological_order(root) if isinstance(entry, autograd.Node)}


def loss_arguments(case, device):
    return dict(target=Tensor(case.target, device=device), ignore_index=case.ignore_index,
                weight=None if case.weight is None else Tensor(case.weight, device=device),
                reduction=case.reduction)


# ----------------------------------------------------------------- cross-entropy
@settings(max_examples=40)
@given(case=cross_entropy_cases(), seed=seeds)
def test_cross_entropy_equals_its_textbook_form(device, case, seed):
    arguments = loss_arguments(case, device)
    check_the_forms_agree(lambda x: F.cross_entropy(x, **arguments),
                          lambda x: F.cross_entropy_textbook(x, **arguments),
                          [Tensor(case.logits, device=device, requires_grad=True)], seed)


# ----------------------------------------------------------------- focal loss
@settings(max_examples=40)
@given(case=cross_entropy_cases(), gamma=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), seed=seeds)
def test_focal_loss_equals_its_textbook_form(device, case, gamma, seed):
    """Except where p_t is 1 (one class) and 0 < gamma < 1: there autograd meets 0 * inf."""
    assume(case.logits.shape[1] > 1 or gamma == 0 or gamma >= 1)
    arguments = dict(loss_arguments(case, device), gamma=gamma)
    check_the_forms_agree(lambda x: F.focal_loss(x, **arguments),
                          lambda x: F.focal_loss_textbook(x, **arguments),
                          [Tensor(case.logits, device=device, requires_grad=True)], seed)


# ----------------------------------------------------------------- dice loss
@settings(max_examples=40)
@given(case=cross_entropy_cases(), smooth=st.sampled_from([0.0, 0.5, 1.0]), seed=seeds)
def test_dice_loss_equals_its_textbook_form(device, case, smooth, seed):
    """At least one pixel is counted (the case draws one), so D_c > 0 even with smooth = 0."""
    arguments = dict(loss_arguments(case, device), smooth=smooth)
    check_the_forms_agree(lambda x: F.dice_loss(x, **arguments),
                          lambda x: F.dice_loss_textbook(x, **arguments),
                          [Tensor(case.logits, device=device, requires_grad=True)], seed)


# ----------------------------------------------------------------- batch norm
@st.composite
def batch_norm_cases(draw):
    """x (N, C, H, W) with more than one value per channel, and which of the optional arguments."""
    n, c, h, w = (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                  draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if n * h * w < 2:
        h += 1
    x = draw(normal_arrays((n, c, h, w), scale=draw(st.sampled_from([1.0, 3.0]))))
    return dict(x=x + draw(st.sampled_from([0.0, 5.0])), training=draw(st.booleans()),
                running=draw(st.booleans()), affine=draw(st.booleans()),
                momentum=draw(st.sampled_from([0.1, 0.5])), eps=draw(st.sampled_from([1e-5, 1e-3])))


@settings(max_examples=40)
@given(case=batch_norm_cases(), seed=seeds, relu=st.booleans(), group_bytes=st.integers(1, 2048))
def test_batch_norm_equals_its_textbook_form(device, case, seed, relu, group_bytes):
    """Value, the gradients of x, weight and bias, and the running estimates each form leaves;
    with relu, batch_norm_relu against relu(batch_norm_textbook) (about half of it cut to 0).
    The fused form's passes take samples in groups of up to group_bytes (one sample at least)."""
    with mock.patch.object(sample_threads, "GROUP_BYTES", group_bytes):
        batch_norm_forms_agree(device, case, seed, relu)


def batch_norm_forms_agree(device, case, seed, relu):
    rng = np.random.default_rng(seed)
    c = case["x"].shape[1]
    x = Tensor(case["x"], device=device, requires_grad=True)
    affine = [Tensor(rng.uniform(0.5, 1.5, c), device=device, requires_grad=True),
              Tensor(rng.standard_normal(c), device=device, requires_grad=True)] if case["affine"] else []
    start = (rng.standard_normal(c), rng.uniform(0.5, 2.0, c)) if case["running"] else None
    estimates = {}

    def form(batch_norm, name):
        def call(x, *weight_and_bias):
            running = [Tensor(a, device=device) for a in start] if start else [None, None]
            y = batch_norm(x, *running, *weight_and_bias, training=case["training"],
                           momentum=case["momentum"], eps=case["eps"])
            estimates[name] = [backend.to_numpy(t.data) for t in running if t is not None]
            return y
        return call

    fused, textbook = ((F.batch_norm_relu, F.batch_norm_relu_textbook) if relu
                       else (F.batch_norm, F.batch_norm_textbook))
    check_the_forms_agree(form(fused, "fused"), form(textbook, "textbook"), [x] + affine, seed)
    for got, want in zip(estimates["textbook"], estimates["fused"]):
        np.testing.assert_allclose(got, want, **TOLERANCE)


# ----------------------------------------------------------------- conv2d then relu
@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs(), bias=st.booleans(), shift=st.sampled_from([-1.0, 0.0, 1.0]),
       form=st.sampled_from(["fast", "textbook"]), data=st.data())
def test_conv2d_relu_equals_its_textbook_form(device, cfg, bias, shift, form, data):
    """Values and the gradients of x, weight and bias; outputs shifted so that few, some or most
    are cut to 0, whichever kernels run (the fast ones on the CPU, unless told textbook)."""
    x = Tensor(data.draw(normal_arrays(cfg.input_shape)), device=device, requires_grad=True)
    w = Tensor(data.draw(normal_arrays(cfg.weight_shape)), device=device, requires_grad=True)
    b = Tensor(data.draw(normal_arrays((cfg.out_channels,))) + shift, device=device, requires_grad=True)
    inputs = [x, w, b] if bias else [x, w]
    with F.kernels(form):
        check_the_forms_agree(lambda *t: F.conv2d_relu(*t, stride=cfg.stride, padding=cfg.padding),
                              lambda *t: F.conv2d_relu_textbook(*t, stride=cfg.stride, padding=cfg.padding),
                              inputs, data.draw(seeds))


# ----------------------------------------------------------------- made of Tensor operations
def test_the_textbook_forms_are_graphs_of_tensor_operations():
    """A textbook form's graph holds small operations autograd differentiates, never the fused one."""
    rng = np.random.default_rng(0)
    logits = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    target = rng.integers(0, 3, (2, 4, 4))
    x = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    for name, fused, textbook in [
            ("cross_entropy", F.cross_entropy(logits, target), F.cross_entropy_textbook(logits, target)),
            ("focal_loss", F.focal_loss(logits, target), F.focal_loss_textbook(logits, target)),
            ("dice_loss", F.dice_loss(logits, target), F.dice_loss_textbook(logits, target)),
            ("batch_norm", F.batch_norm(x, None, None, training=True),
             F.batch_norm_textbook(x, None, None, training=True))]:
        assert operations(fused) == {name}
        assert name not in operations(textbook) and len(operations(textbook)) >= 3
    w = Tensor(rng.standard_normal((2, 3, 3, 3)))
    assert operations(F.conv2d_relu(x, w, padding=1)) == {"conv2d_relu"}
    assert operations(F.conv2d_relu_textbook(x, w, padding=1)) == {"conv2d", "relu"}
    assert operations(F.batch_norm_relu(x, None, None, training=True)) == {"batch_norm_relu"}
    textbook = operations(F.batch_norm_relu_textbook(x, None, None, training=True))
    assert "relu" in textbook and "batch_norm" not in textbook and len(textbook) >= 4


@pytest.mark.parametrize("call, message", [
    (lambda: F.cross_entropy_textbook(Tensor(np.zeros((2, 3))), np.array([0, 3])), "outside"),
    (lambda: F.focal_loss_textbook(Tensor(np.zeros((2, 3))), np.array([0, 1]), gamma=-1), "gamma"),
    (lambda: F.dice_loss_textbook(Tensor(np.zeros((2, 3))), np.array([0, 1]), smooth=-1), "smooth"),
    (lambda: F.batch_norm_textbook(Tensor(np.zeros((1, 3, 1, 1))), None, None, training=True),
     "more than one value"),
])
def test_the_textbook_forms_refuse_what_the_fused_ones_refuse(call, message):
    with pytest.raises(ValueError, match=message):
        call()
