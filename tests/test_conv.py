"""conv2d and conv_transpose2d: values against direct loops, gradients, adjointness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import reference
from strategies import ConvConfig, TransposeConvConfig, conv_configs, normal_arrays, seeds, transpose_conv_configs
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F

# Named corner cases, always run on top of the drawn ones.
BATCH_1_ONE_CHANNEL = ConvConfig(1, 1, 1, 5, 5, (3, 3), (1, 1), (0, 0))
STRIDE_ABOVE_KERNEL = ConvConfig(2, 2, 3, 9, 8, (2, 1), (4, 3), (0, 1))
NON_SQUARE_ODD = ConvConfig(3, 3, 2, 7, 5, (1, 4), (2, 1), (2, 1))
KERNEL_IS_PADDED_INPUT = ConvConfig(1, 2, 2, 1, 2, (3, 4), (1, 1), (1, 1))


KERNELS = pytest.mark.parametrize("form", ["fast", "textbook"])    # F.kernels(form) around the check


def tensor(array, device, requires_grad=False):
    return Tensor(array, device=device, requires_grad=requires_grad)


def inner(a, b) -> float:
    """<a, b>: the sum of the elementwise product."""
    return float(np.vdot(a, b))


@KERNELS
# ----------------------------------------------------------------- conv2d
@settings(max_examples=25)
@given(cfg=conv_configs(), use_bias=st.booleans(), seed=seeds)
@example(cfg=BATCH_1_ONE_CHANNEL, use_bias=False, seed=0)
@example(cfg=STRIDE_ABOVE_KERNEL, use_bias=True, seed=0)
@example(cfg=NON_SQUARE_ODD, use_bias=True, seed=0)
@example(cfg=KERNEL_IS_PADDED_INPUT, use_bias=False, seed=0)
def test_conv2d_matches_direct_loop(device, form, cfg, use_bias, seed):
    with F.kernels(form):
        check_conv2d_matches_direct_loop(device, cfg, use_bias, seed)


def check_conv2d_matches_direct_loop(device, cfg, use_bias, seed):
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


@KERNELS
@settings(max_examples=20)
@given(cfg=conv_configs(max_batch=2, max_channels=3, max_side=6), use_bias=st.booleans(), seed=seeds)
@example(cfg=STRIDE_ABOVE_KERNEL, use_bias=True, seed=0)
def test_conv2d_gradcheck(device, form, cfg, use_bias, seed):
    with F.kernels(form):
        check_conv2d_gradcheck(device, cfg, use_bias, seed)


def check_conv2d_gradcheck(device, cfg, use_bias, seed):
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


@KERNELS
# ----------------------------------------------------------------- conv_transpose2d
@settings(max_examples=25)
@given(cfg=transpose_conv_configs(), use_bias=st.booleans(), seed=seeds)
@example(cfg=TransposeConvConfig(1, 1, 1, 3, 3, (3, 3), (2, 2), (1, 1), (1, 1)), use_bias=False, seed=0)
@example(cfg=TransposeConvConfig(2, 3, 2, 4, 3, (1, 2), (3, 2), (0, 1), (2, 0)), use_bias=True, seed=0)
def test_conv_transpose2d_matches_scatter_loop(device, form, cfg, use_bias, seed):
    with F.kernels(form):
        check_conv_transpose2d_matches_scatter_loop(device, cfg, use_bias, seed)


def check_conv_transpose2d_matches_scatter_loop(device, cfg, use_bias, seed):
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


# ----------------------------------------------------------------- which kernels run
def test_kernels_switches_the_form_inside_the_block_and_restores_it_after():
    assert F.kernels.current() == "fast"
    with F.kernels("textbook") as outer:
        assert F.kernels.current() == "textbook"
        with F.kernels("fast"):
            assert F.kernels.current() == "fast"
        assert F.kernels.current() == "textbook"
        with outer:                                          # the same object, entered again
            assert F.kernels.current() == "textbook"
        assert F.kernels.current() == "textbook"
    assert F.kernels.current() == "fast"


def test_kernels_restores_the_form_after_an_exception():
    with pytest.raises(RuntimeError, match="inside"):
        with F.kernels("textbook"):
            raise RuntimeError("inside")
    assert F.kernels.current() == "fast"


def test_kernels_names_the_forms_it_takes():
    with pytest.raises(ValueError, match=r"kernels: form must be one of \('fast', 'textbook'\), got 'slow'"):
        F.kernels("slow")


def test_kernels_says_which_form_runs_and_how_to_step_through_the_other():
    assert "fast_conv.py" in F.kernels.describe() and 'kernels("textbook")' in F.kernels.describe()
    with F.kernels("textbook"):
        assert "W @ im2col(x)" in F.kernels.describe() and 'kernels("fast")' in F.kernels.describe()
    assert F.kernels.current("cuda") == "textbook"                # a GPU takes the one big product


def test_both_forms_give_the_same_convolution_and_gradients():
    """The operators, not only their kernels: conv2d and conv_transpose2d, forward and backward."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2))
    results = {}
    for form in ("fast", "textbook"):
        with F.kernels(form):
            xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
            y = F.conv2d(xt, wt, stride=2, padding=1)
            up = F.conv_transpose2d(y, wt, stride=2, padding=1, output_padding=(0, 1))
            (up * up).sum().backward()
            results[form] = (up.numpy(), xt.grad, wt.grad)
    for fast, textbook in zip(results["fast"], results["textbook"]):
        np.testing.assert_allclose(fast, textbook, rtol=1e-10, atol=1e-10)
