"""conv2d and conv_transpose2d: values against direct loops, gradients, adjointness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import reference
import tinyseg.functional.conv as conv_module
from strategies import ConvConfig, TransposeConvConfig, conv_configs, normal_arrays, seeds, transpose_conv_configs
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F

# Named corner cases, always run on top of the drawn ones.
BATCH_1_ONE_CHANNEL = ConvConfig(1, 1, 1, 5, 5, (3, 3), (1, 1), (0, 0))
STRIDE_ABOVE_KERNEL = ConvConfig(2, 2, 3, 9, 8, (2, 1), (4, 3), (0, 1))
NON_SQUARE_ODD = ConvConfig(3, 3, 2, 7, 5, (1, 4), (2, 1), (2, 1))
KERNEL_IS_PADDED_INPUT = ConvConfig(1, 2, 2, 1, 2, (3, 4), (1, 1), (1, 1))


def tensor(array, device, requires_grad=False):
    return Tensor(array, device=device, requires_grad=requires_grad)


def inner(a, b) -> float:
    """<a, b>: the sum of the elementwise product."""
    return float(np.vdot(a, b))


# ----------------------------------------------------------------- conv2d
@settings(max_examples=25)
@given(cfg=conv_configs(), use_bias=st.booleans(), seed=seeds)
@example(cfg=BATCH_1_ONE_CHANNEL, use_bias=False, seed=0)
@example(cfg=STRIDE_ABOVE_KERNEL, use_bias=True, seed=0)
@example(cfg=NON_SQUARE_ODD, use_bias=True, seed=0)
@example(cfg=KERNEL_IS_PADDED_INPUT, use_bias=False, seed=0)
def test_conv2d_matches_direct_loop(device, cfg, use_bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(cfg.input_shape), rng.standard_normal(cfg.weight_shape)
    b = rng.standard_normal(cfg.out_channels) if use_bias else None
    y = F.conv2d(tensor(x, device), tensor(w, device), None if b is None else tensor(b, device),
                 stride=cfg.stride, padding=cfg.padding)
    expected = reference.conv2d(x, w, b, cfg.stride, cfg.padding)
    assert y.shape == cfg.output_shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_conv2d_int_stride_and_padding_mean_the_same_on_both_axes():
    rng = np.random.default_rng(1)
    x, w = Tensor(rng.standard_normal((2, 3, 7, 6))), Tensor(rng.standard_normal((4, 3, 3, 3)))
    np.testing.assert_array_equal(F.conv2d(x, w, stride=2, padding=1).numpy(),
                                  F.conv2d(x, w, stride=(2, 2), padding=(1, 1)).numpy())


def test_conv2d_float32_stays_float32_and_close_to_float64(device):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(Tensor(x, dtype=np.float32, device=device), Tensor(w, dtype=np.float32, device=device),
                 padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), reference.conv2d(x, w, padding=(1, 1)), rtol=1e-4, atol=1e-4)


def test_conv2d_reads_non_contiguous_input(device):
    """A transposed view (strides out of order) convolves like its contiguous copy."""
    rng = np.random.default_rng(3)
    x_hw_swapped = rng.standard_normal((2, 3, 5, 7))
    w = tensor(rng.standard_normal((2, 3, 2, 3)), device)
    view = tensor(x_hw_swapped, device).transpose(0, 1, 3, 2)                  # (2, 3, 7, 5), not contiguous
    copy = tensor(np.ascontiguousarray(x_hw_swapped.transpose(0, 1, 3, 2)), device)
    np.testing.assert_allclose(F.conv2d(view, w, stride=(2, 1)).numpy(),
                               F.conv2d(copy, w, stride=(2, 1)).numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(cfg=conv_configs(max_batch=2, max_channels=3, max_side=6), use_bias=st.booleans(), seed=seeds)
@example(cfg=STRIDE_ABOVE_KERNEL, use_bias=True, seed=0)
def test_conv2d_gradcheck(device, cfg, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = tensor(rng.standard_normal(cfg.input_shape), device, requires_grad=True)
    w = tensor(rng.standard_normal(cfg.weight_shape), device, requires_grad=True)
    b = tensor(rng.standard_normal(cfg.out_channels), device, requires_grad=True) if use_bias else None
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=cfg.stride, padding=cfg.padding), x, w, b)


def test_conv2d_weight_grad_alone_when_input_needs_none(device):
    """Only the weight requires grad: the input gets no .grad, the weight the right one."""
    rng = np.random.default_rng(4)
    x = tensor(rng.standard_normal((2, 2, 5, 5)), device)
    w = tensor(rng.standard_normal((3, 2, 3, 3)), device, requires_grad=True)
    assert gradcheck(lambda w: F.conv2d(x, w, padding=1), w)
    F.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 2, 3, 3)


def test_sample_chunks_cover_the_batch_within_the_budget(monkeypatch):
    monkeypatch.setattr(conv_module, "COLUMN_BUDGET_BYTES", 250)
    assert conv_module.sample_chunks(5, 100) == [(0, 2), (2, 4), (4, 5)]
    assert conv_module.sample_chunks(2, 1000) == [(0, 1), (1, 2)]          # at least one sample
    assert conv_module.sample_chunks(3, 1) == [(0, 3)]


@pytest.mark.parametrize("stride", [(2, 1), (1, 1)])
@pytest.mark.parametrize("budget", [1, 3000])
def test_conv_results_do_not_depend_on_the_batch_chunking(monkeypatch, device, stride, budget):
    """The im2col budget splits the batch into chunks (1 sample, or a few); values and gradients agree."""
    rng = np.random.default_rng(5)
    x_data, w_data = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 3, 2))

    def run():
        x, w = tensor(x_data, device, True), tensor(w_data, device, True)
        y = F.conv2d(x, w, stride=stride, padding=(1, 0))
        y.backward(tensor(np.cos(np.arange(y.size)).reshape(y.shape), device))
        up = F.conv_transpose2d(y.detach(), w.detach(), stride=stride, padding=(1, 0))
        return [y.numpy(), backend.to_numpy(x.grad), backend.to_numpy(w.grad), up.numpy()]

    whole = run()
    monkeypatch.setattr(conv_module, "COLUMN_BUDGET_BYTES", budget)
    for expected, actual in zip(whole, run()):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- conv_transpose2d
@settings(max_examples=25)
@given(cfg=transpose_conv_configs(), use_bias=st.booleans(), seed=seeds)
@example(cfg=TransposeConvConfig(1, 1, 1, 3, 3, (3, 3), (2, 2), (1, 1), (1, 1)), use_bias=False, seed=0)
@example(cfg=TransposeConvConfig(2, 3, 2, 4, 3, (1, 2), (3, 2), (0, 1), (2, 0)), use_bias=True, seed=0)
def test_conv_transpose2d_matches_scatter_loop(device, cfg, use_bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(cfg.input_shape), rng.standard_normal(cfg.weight_shape)
    b = rng.standard_normal(cfg.out_channels) if use_bias else None
    y = F.conv_transpose2d(tensor(x, device), tensor(w, device), None if b is None else tensor(b, device),
                           stride=cfg.stride, padding=cfg.padding, output_padding=cfg.output_padding)
    expected = reference.conv_transpose2d(x, w, b, cfg.stride, cfg.padding, cfg.output_padding)
    assert y.shape == cfg.output_shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=20)
@given(cfg=transpose_conv_configs(max_batch=2, max_channels=3, max_side=4), use_bias=st.booleans(),
       seed=seeds)
def test_conv_transpose2d_gradcheck(device, cfg, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = tensor(rng.standard_normal(cfg.input_shape), device, requires_grad=True)
    w = tensor(rng.standard_normal(cfg.weight_shape), device, requires_grad=True)
    b = tensor(rng.standard_normal(cfg.out_channels), device, requires_grad=True) if use_bias else None
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=cfg.stride, padding=cfg.padding,
                                                        output_padding=cfg.output_padding), x, w, b)


@pytest.mark.parametrize("size, stride, padding, kernel", [(4, 2, 1, 4), (5, 2, 0, 3), (3, 3, 1, 2)])
def test_conv_transpose2d_output_padding_picks_among_the_sizes_conv_maps_back(size, stride, padding, kernel):
    """Each output_padding < stride gives a size that conv2d, with the same settings, maps back to `size`."""
    x = Tensor(np.ones((1, 1, size, size)))
    w = Tensor(np.ones((1, 1, kernel, kernel)))
    for output_padding in range(stride):
        up = F.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding)
        expected_side = (size - 1) * stride - 2 * padding + kernel + output_padding
        assert up.shape == (1, 1, expected_side, expected_side)
        assert F.conv2d(up, w, stride=stride, padding=padding).shape == (1, 1, size, size)


# ----------------------------------------------------------------- the two are adjoints
@settings(max_examples=30)
@given(cfg=conv_configs(), seed=seeds)
@example(cfg=STRIDE_ABOVE_KERNEL, seed=0)
@example(cfg=NON_SQUARE_ODD, seed=0)
def test_conv_transpose2d_is_adjoint_of_conv2d(device, cfg, seed):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>, output_padding chosen so shapes match."""
    rng = np.random.default_rng(seed)
    x, w, y = (rng.standard_normal(cfg.input_shape), rng.standard_normal(cfg.weight_shape),
               rng.standard_normal(cfg.output_shape))
    conv_x = F.conv2d(tensor(x, device), tensor(w, device), stride=cfg.stride, padding=cfg.padding)
    transposed_y = F.conv_transpose2d(tensor(y, device), tensor(w, device), stride=cfg.stride,
                                      padding=cfg.padding, output_padding=cfg.output_padding)
    assert transposed_y.shape == cfg.input_shape
    assert inner(conv_x.numpy(), y) == pytest.approx(inner(x, transposed_y.numpy()), rel=1e-9, abs=1e-9)


@settings(max_examples=15)
@given(cfg=conv_configs(max_side=6), seed=seeds)
def test_conv2d_input_gradient_is_conv_transpose2d_of_output_gradient(cfg, seed):
    """Backprop through conv2d and the transpose convolution compute the same map."""
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(cfg.input_shape), requires_grad=True)
    w = Tensor(rng.standard_normal(cfg.weight_shape))
    gy = rng.standard_normal(cfg.output_shape)
    F.conv2d(x, w, stride=cfg.stride, padding=cfg.padding).backward(gy)
    expected = F.conv_transpose2d(Tensor(gy), w, stride=cfg.stride, padding=cfg.padding,
                                  output_padding=cfg.output_padding)
    np.testing.assert_allclose(x.grad, expected.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- the tap-loop forward
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), o=st.integers(1, 2), c=st.integers(8, 12), h=st.integers(1, 9),
       w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4), ph=st.integers(0, 2),
       pw=st.integers(0, 2), data=st.data())
def test_tap_loop_forward_equals_the_im2col_forward(n, o, c, h, w, kh, kw, ph, pw, data):
    """Few outputs, many inputs: conv_forward sums kernel taps instead of building columns."""
    from tinyseg.functional.conv import ColumnPlan, FEW_OUTPUTS, conv_forward, conv_forward_by_taps
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    assert o * FEW_OUTPUTS <= c                      # conv_forward takes the tap loop here
    x = data.draw(normal_arrays((n, c, h, w)))
    weight = data.draw(normal_arrays((o, c, kh, kw)))
    expected = reference.conv2d(x, weight, stride=(1, 1), padding=(ph, pw))
    plan = ColumnPlan(x.shape, (kh, kw), (1, 1), (ph, pw), x.itemsize)
    np.testing.assert_allclose(conv_forward_by_taps(x, weight, plan), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv_forward(x, weight, (1, 1), (ph, pw)), expected, rtol=1e-10, atol=1e-10)
