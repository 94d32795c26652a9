"""im2col and col2im against direct loops, and col2im as im2col's adjoint."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from strategies import ConvConfig, conv_configs, normal_arrays
from tinyseg import backend
from tinyseg.im2col import add_windows, col2im, im2col, output_size, window_view


def columns_shape(cfg: ConvConfig) -> tuple:
    _, _, oh, ow = cfg.output_shape
    return (cfg.in_channels * cfg.kernel[0] * cfg.kernel[1], cfg.batch * oh * ow)


def test_the_docstring_example_4x4_image_3x3_window():
    """Rows are taps, columns are the windows at a, b, e, f."""
    a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p = range(16)
    image = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = im2col(image, (3, 3), (1, 1), (0, 0))
    assert cols.shape == (9, 4)
    assert cols[0].tolist() == [a, b, e, f]      # tap (0, 0)
    assert cols[1].tolist() == [b, c, f, g]      # tap (0, 1)
    assert cols[2].tolist() == [c, d, g, h]      # tap (0, 2)
    assert cols[3].tolist() == [e, f, i, j]      # tap (1, 0)
    assert cols[8].tolist() == [k, l, o, p]      # tap (2, 2)


def test_a_batch_puts_each_images_columns_side_by_side():
    images = np.arange(32.0).reshape(2, 1, 4, 4)
    cols = im2col(images, (3, 3), (1, 1), (0, 0))
    assert cols.shape == (9, 8)
    np.testing.assert_array_equal(cols[:, :4], im2col(images[:1], (3, 3), (1, 1), (0, 0)))
    np.testing.assert_array_equal(cols[:, 4:], im2col(images[1:], (3, 3), (1, 1), (0, 0)))


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (4, 3, 1, 0, 2), (5, 3, 2, 1, 3), (9, 2, 2, 0, 4), (7, 1, 4, 0, 2), (1, 3, 1, 1, 1), (6, 4, 3, 2, 3),
])
def test_output_size_is_floor_of_padded_size_minus_kernel_over_stride_plus_one(size, kernel, stride,
                                                                                padding, expected):
    assert output_size(size, kernel, stride, padding) == expected


@settings(max_examples=20)
@given(cfg=conv_configs(), data=st.data())
def test_window_view_is_padded_image_at_y_times_stride_plus_tap(cfg, data):
    """view[n, c, i, j, y, x] == padded[n, c, y * sh + i, x * sw + j]."""
    x = data.draw(normal_arrays(cfg.input_shape))
    (ph, pw), (sh, sw) = cfg.padding, cfg.stride
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    view = window_view(padded, cfg.kernel, cfg.stride)
    _, _, oh, ow = cfg.output_shape
    assert view.shape == (cfg.batch, cfg.in_channels) + cfg.kernel + (oh, ow)
    for i, j, y, x_ in np.ndindex(*cfg.kernel, oh, ow):
        np.testing.assert_array_equal(view[:, :, i, j, y, x_], padded[:, :, y * sh + i, x_ * sw + j])


@settings(max_examples=25)
@given(cfg=conv_configs(), data=st.data())
def test_im2col_matches_loop(xp, cfg, data):
    x = data.draw(normal_arrays(cfg.input_shape))
    cols = im2col(xp.asarray(x), cfg.kernel, cfg.stride, cfg.padding)
    expected = reference.im2col(x, cfg.kernel, cfg.stride, cfg.padding)
    np.testing.assert_array_equal(backend.to_numpy(cols), expected)


@settings(max_examples=25)
@given(cfg=conv_configs(), data=st.data())
def test_col2im_matches_loop(xp, cfg, data):
    cols = data.draw(normal_arrays(columns_shape(cfg)))
    image = col2im(xp.asarray(cols), cfg.input_shape, cfg.kernel, cfg.stride, cfg.padding)
    expected = reference.col2im(cols, cfg.input_shape, cfg.kernel, cfg.stride, cfg.padding)
    np.testing.assert_allclose(backend.to_numpy(image), expected, rtol=1e-12, atol=1e-12)


def test_col2im_adds_overlapping_windows(xp):
    """stride 1 < kernel 2 on a 3x3 image: the centre pixel lies in all 4 windows."""
    cols = np.ones((4, 4))                           # every tap of every window holds 1
    image = backend.to_numpy(col2im(xp.asarray(cols), (1, 1, 3, 3), (2, 2), (1, 1), (0, 0)))
    np.testing.assert_array_equal(image[0, 0], [[1, 2, 1],
                                                [2, 4, 2],
                                                [1, 2, 1]])


@settings(max_examples=20)
@given(cfg=conv_configs(), data=st.data())
def test_col2im_is_adjoint_of_im2col(xp, cfg, data):
    """<im2col(x), c> == <x, col2im(c)>."""
    x = data.draw(normal_arrays(cfg.input_shape))
    c = data.draw(normal_arrays(columns_shape(cfg)))
    lhs = np.vdot(backend.to_numpy(im2col(xp.asarray(x), cfg.kernel, cfg.stride, cfg.padding)), c)
    rhs = np.vdot(x, backend.to_numpy(col2im(xp.asarray(c), cfg.input_shape, cfg.kernel, cfg.stride,
                                             cfg.padding)))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_add_windows_is_col2im_on_the_window_layout(xp):
    """col2im(cols) == add_windows(cols as (N, C, kh, kw, OH, OW)): col2im only reorders."""
    cfg = ConvConfig(2, 3, 1, 5, 6, (2, 3), (1, 2), (1, 0))
    _, _, oh, ow = cfg.output_shape
    cols = np.random.default_rng(0).standard_normal(columns_shape(cfg))
    flat = col2im(xp.asarray(cols), cfg.input_shape, cfg.kernel, cfg.stride, cfg.padding)
    windows = cols.reshape(3, 2, 3, 2, oh, ow).transpose(3, 0, 1, 2, 4, 5)
    added = add_windows(xp.asarray(windows), cfg.input_shape, cfg.kernel, cfg.stride, cfg.padding)
    np.testing.assert_array_equal(backend.to_numpy(flat), backend.to_numpy(added))
