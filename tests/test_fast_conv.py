"""The fast convolution (tinyseg/functional/fast_conv.py) equals the textbook one (conv.py).

Every fast kernel is checked against its textbook twin (fast_forward against
textbook_forward, ...) in float64 on drawn shapes: strides above and below the kernel (stride phases),
padding, non-square kernels, bands so small that a sample splits into
several, the last one ragged, and batches cut over one, two or three threads
(sample_threads.py), however small the samples.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from strategies import ConvConfig, conv_configs, normal_arrays
from tinyseg.functional import conv as textbook
from tinyseg.functional import bands as bands_module
from tinyseg.functional import fast_conv, sample_threads, stacked_rows, tap_sum

STRIDE_ABOVE_KERNEL = ConvConfig(2, 2, 3, 9, 8, (2, 1), (4, 3), (0, 1))
ONE_PIXEL = ConvConfig(1, 2, 2, 1, 2, (3, 4), (1, 1), (1, 1))
TOLERANCE = dict(rtol=1e-10, atol=1e-10)

# bands: (BAND_BYTES, MIN_BAND_COLUMNS[, ROWS_PER_EXTRA_ROW]); (1, 1) gives one output row per band
# (one for the bands of trick 10 too, which are at least 4 * (kh - 1) rows, unless that is 0), (1, 40) a few
band_settings = st.sampled_from([(1, 1, 0), (200, 7, 0), (1, 40, 0), (1, 1),
                                 (bands_module.BAND_BYTES, bands_module.MIN_BAND_COLUMNS)])
# threads: (WORKERS, MIN_SAMPLE_BYTES); 0 bytes cuts even the smallest batch over the threads
thread_settings = st.sampled_from([(1, 0), (2, 0), (3, 0),
                                   (sample_threads.WORKERS, sample_threads.MIN_SAMPLE_BYTES)])


def thread_setting(setting):
    """sample_threads' (WORKERS, MIN_SAMPLE_BYTES) set to `setting` inside the block."""
    return mock.patch.multiple(sample_threads, WORKERS=setting[0], MIN_SAMPLE_BYTES=setting[1])


def band_setting(setting):
    """bands' (BAND_BYTES, MIN_BAND_COLUMNS[, ROWS_PER_EXTRA_ROW]) set to `setting` inside the block."""
    rows_per_extra_row = setting[2] if len(setting) > 2 else bands_module.ROWS_PER_EXTRA_ROW
    return mock.patch.multiple(bands_module, BAND_BYTES=setting[0], MIN_BAND_COLUMNS=setting[1],
                               ROWS_PER_EXTRA_ROW=rows_per_extra_row)


def rows_setting(setting):
    """Where trick 10 (stacked rows) runs inside the block: "rule" as measured, "always" wherever
    it applies (stride 1), "never"."""
    if setting == "rule":
        return contextlib.nullcontext()
    always = setting == "always"
    return mock.patch.object(fast_conv, "stacked_rows_pay",
                             lambda bands, *args: always and tuple(bands.stride) == (1, 1))


rows_settings = st.sampled_from(["rule", "always", "never"])


@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs(), bands=band_settings, threads=thread_settings, rows=rows_settings,
       data=st.data())
@example(cfg=STRIDE_ABOVE_KERNEL, bands=(1, 1), threads=(2, 0), rows="rule", data=None)
@example(cfg=ONE_PIXEL, bands=(1, 1), threads=(1, 0), rows="always", data=None)
@example(cfg=ConvConfig(2, 2, 4, 5, 6, (3, 3), (1, 1), (1, 1)), bands=(1, 1), threads=(2, 0), rows="always",
         data=None)                                        # twice the outputs: trick 6 by stacked rows
def test_fast_kernels_equal_the_textbook_kernels(cfg, bands, threads, rows, data):
    """Each fast twin equals its textbook kernel: forward, both gradients, both backwards;
    with trick 10 where it pays, wherever it applies, and nowhere."""
    with band_setting(bands), thread_setting(threads), rows_setting(rows):
        check_fast_against_textbook(cfg, data)


def check_fast_against_textbook(cfg, data):
    if data is None:                                       # the @example cases
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal(cfg.input_shape), rng.standard_normal(cfg.weight_shape)
        gy = rng.standard_normal(cfg.output_shape)
    else:
        x = data.draw(normal_arrays(cfg.input_shape))
        w = data.draw(normal_arrays(cfg.weight_shape))
        gy = data.draw(normal_arrays(cfg.output_shape))
    s, p = cfg.stride, cfg.padding
    np.testing.assert_allclose(fast_conv.fast_forward(x, w, s, p),
                               textbook.textbook_forward(x, w, s, p), **TOLERANCE)
    expected_gx = textbook.textbook_input_grad(gy, w, x.shape, s, p)
    expected_gw = textbook.textbook_weight_grad(gy, x, w.shape, s, p)
    np.testing.assert_allclose(fast_conv.fast_input_grad(gy, w, x.shape, s, p), expected_gx, **TOLERANCE)
    np.testing.assert_allclose(fast_conv.fast_weight_grad(gy, x, w.shape, s, p), expected_gw, **TOLERANCE)
    b = np.linspace(-1.0, 2.0, w.shape[0])                 # a different bias for each output
    np.testing.assert_allclose(fast_conv.fast_forward(x, w, s, p, b),
                               textbook.textbook_forward(x, w, s, p, b), **TOLERANCE)
    check_relu_twins(x, w, b, gy, s, p)
    y, gw, x_sums = fast_conv.forward_and_weight_grad(x, w, gy, s, p, image_sums=True)   # one column pass
    np.testing.assert_allclose(y, textbook.textbook_forward(x, w, s, p), **TOLERANCE)
    np.testing.assert_allclose(gw, expected_gw, **TOLERANCE)
    np.testing.assert_allclose(x_sums, x.sum(axis=(0, 2, 3)), **TOLERANCE)
    for need_input, need_weight, need_bias in ((True, True, True), (True, True, False),
                                               (True, False, True), (False, True, False)):
        check_twins(fast_conv.fast_backward(gy, x, w, s, p, need_input, need_weight, need_bias),
                    textbook.textbook_backward(gy, x, w, s, p, need_input, need_weight, need_bias))
    # conv_transpose(gy, w) + c has input gy and output x's shape (in conv's terms, x is its image)
    c = np.linspace(-2.0, 1.0, w.shape[1])                 # the transpose convolution's bias
    np.testing.assert_allclose(fast_conv.fast_transpose_forward(gy, w, x.shape, s, p, c),
                               textbook.textbook_transpose_forward(gy, w, x.shape, s, p, c), **TOLERANCE)
    for need_input, need_weight, need_bias in ((True, True, True), (True, True, False),
                                               (True, False, True), (False, True, False)):
        check_twins(fast_conv.fast_transpose_backward(x, gy, w, s, p, need_input, need_weight, need_bias),
                    textbook.textbook_transpose_backward(x, gy, w, s, p, need_input, need_weight, need_bias))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), o=st.integers(1, 5),
       kernel=st.sampled_from([(1, 1), (2, 2), (3, 2)]),
       tiles=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       padding=st.tuples(st.integers(0, 1), st.integers(0, 1)),
       bands=band_settings, threads=thread_settings, data=st.data())
def test_fast_kernels_equal_the_textbook_kernels_where_windows_tile(n, c, o, kernel, tiles, extra, padding,
                                                                     bands, threads, data):
    """kernel == stride (trick 9: the columns are a view of the phases), whole tiles or rows left over."""
    h, w = (tiles[0] * kernel[0] + extra[0] % kernel[0], tiles[1] * kernel[1] + extra[1] % kernel[1])
    cfg = ConvConfig(n, c, o, h, w, kernel, kernel, padding)
    with band_setting(bands), thread_setting(threads):
        check_fast_against_textbook(cfg, data)


def check_relu_twins(x, w, b, gy, s, p):
    """Trick 11: conv2d_relu's kernels, fast and textbook, equal; and the textbook ones are relu
    after the convolution and ReLU's backward before its backward."""
    y = fast_conv.fast_forward(x, w, s, p, b, relu=True)
    expected_y = textbook.textbook_forward(x, w, s, p, b, relu=True)
    np.testing.assert_allclose(y, expected_y, **TOLERANCE)
    np.testing.assert_array_equal(expected_y, np.maximum(textbook.textbook_forward(x, w, s, p, b), 0))
    for need_input, need_weight, need_bias in ((True, True, True), (True, False, True), (False, True, False)):
        expected = textbook.textbook_backward(gy, x, w, s, p, need_input, need_weight, need_bias, y)
        check_twins(fast_conv.fast_backward(gy, x, w, s, p, need_input, need_weight, need_bias, y), expected)
        check_twins(textbook.textbook_backward(gy * (y > 0), x, w, s, p, need_input, need_weight, need_bias),
                    expected)


def check_twins(fast, expected):
    """Two (dL/dx or None, dL/dw or None[, dL/db or None]) tuples are equal."""
    assert len(fast) == len(expected)
    for got, want in zip(fast, expected):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got, want, **TOLERANCE)


@settings(max_examples=30, deadline=None)
@given(channels=st.one_of(st.tuples(st.integers(1, 2), st.integers(8, 12)),        # few outputs
                          st.tuples(st.integers(30, 34), st.integers(32, 34))),    # deep taps
       n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4),
       kw=st.integers(1, 4), ph=st.integers(0, 2), pw=st.integers(0, 2), threads=thread_settings,
       data=st.data())
def test_tap_sum_forward_equals_the_textbook_forward(channels, n, h, w, kh, kw, ph, pw, threads, data):
    """Few outputs, or O <= C with deep taps: the fast forward sums kernel taps, no columns."""
    o, c = channels
    if h + 2 * ph < kh or w + 2 * pw < kw or o > c:
        return
    x = data.draw(normal_arrays((n, c, h, w)))
    weight = data.draw(normal_arrays((o, c, kh, kw)))
    bias = data.draw(normal_arrays((o,)))
    expected = textbook.textbook_forward(x, weight, (1, 1), (ph, pw), bias)
    bands = bands_module.Bands(x.shape, (kh, kw), (1, 1), (ph, pw), x.itemsize)
    assert tap_sum.forward_by_taps_pays(weight.shape, bands)     # fast_forward takes the tap sum
    with thread_setting(threads):
        np.testing.assert_allclose(tap_sum.forward_by_taps(x, weight, bands, bias), expected,
                                   **TOLERANCE)
        np.testing.assert_allclose(tap_sum.forward_by_taps(x, weight, bands, bias, relu=True),
                                   np.maximum(expected, 0), **TOLERANCE)
        np.testing.assert_allclose(fast_conv.fast_forward(x, weight, (1, 1), (ph, pw), bias), expected,
                                   **TOLERANCE)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), o=st.integers(1, 3), extra=st.integers(0, 2), h=st.integers(1, 9),
       w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4), data=st.data(),
       bands=band_settings, threads=thread_settings)
def test_backward_from_output_columns_equals_the_textbook_gradients(n, o, extra, h, w, kh, kw, data,
                                                                    bands, threads):
    """Trick 6: for stride 1, both gradients come from dL/dy's columns (a convolution of dL/dy
    with the half-turned weight), on non-square kernels and unequal paddings up to kernel - 1."""
    c = o + extra                                          # O <= C: where fast_backward takes it
    ph, pw = data.draw(st.integers(0, kh - 1)), data.draw(st.integers(0, kw - 1))
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    x = data.draw(normal_arrays((n, c, h, w)))
    weight = data.draw(normal_arrays((o, c, kh, kw)))
    oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    gy = data.draw(normal_arrays((n, o, oh, ow)))
    assert fast_conv.backward_by_output_columns_pays(gy.shape, weight.shape, (1, 1), (ph, pw), gy.itemsize)
    expected_gx = textbook.textbook_input_grad(gy, weight, x.shape, (1, 1), (ph, pw))
    expected_gw = textbook.textbook_weight_grad(gy, x, weight.shape, (1, 1), (ph, pw))
    relu_output = np.maximum(data.draw(normal_arrays(gy.shape)), 0)     # about half of it 0
    with band_setting(bands), thread_setting(threads):
        gx, gw, gb = fast_conv.backward_by_output_columns(gy, x, weight, (ph, pw), need_bias=True)
        masked = fast_conv.backward_by_output_columns(gy, x, weight, (ph, pw), True, relu_output)
    np.testing.assert_allclose(gx, expected_gx, **TOLERANCE)
    np.testing.assert_allclose(gw, expected_gw, **TOLERANCE)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), **TOLERANCE)
    check_twins(masked, textbook.textbook_backward(gy * (relu_output > 0), x, weight, (1, 1), (ph, pw),
                                                   need_bias=True))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), o=st.integers(1, 5), h=st.integers(1, 9),
       w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4), ph=st.integers(0, 4),
       pw=st.integers(0, 4), bands=band_settings, threads=thread_settings, data=st.data())
@example(n=1, c=2, o=3, h=7, w=6, kh=3, kw=3, ph=1, pw=1, bands=(1, 40, 0), threads=(1, 0), data=None)
def test_stacked_rows_equal_the_textbook_forward_and_weight_grad(n, c, o, h, w, kh, kw, ph, pw, bands,
                                                                  threads, data):
    """Trick 10: y = sum over kernel rows i of (W_rows @ R) shifted by i rows, and
    dL/dw = G @ R^T, on any kernel and padding, bands of one row or many, the last one shorter
    (the @example: bands of 3, 3 and 1 rows, so G's tail holds the rows of a longer band)."""
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    rng = np.random.default_rng(0)
    draw = rng.standard_normal if data is None else (lambda shape: data.draw(normal_arrays(shape)))
    x, weight, bias = draw((n, c, h, w)), draw((o, c, kh, kw)), draw((o,))
    gy = draw((n, o, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1))
    mask = np.maximum(draw(x.shape), 0)                    # trick 11: x taken where mask > 0
    with band_setting(bands), thread_setting(threads):
        y, gw, sums = stacked_rows.forward_and_weight_grad_by_rows(x, weight, gy, (ph, pw), bias, True)
        y_alone, no_gw, no_sums = stacked_rows.forward_and_weight_grad_by_rows(x, weight, None, (ph, pw))
        y_relu, gw_masked, sums_masked = stacked_rows.forward_and_weight_grad_by_rows(
            x, weight, gy, (ph, pw), bias, True, relu=True, image_mask=mask)
    np.testing.assert_allclose(y, textbook.textbook_forward(x, weight, (1, 1), (ph, pw), bias), **TOLERANCE)
    np.testing.assert_allclose(gw, textbook.textbook_weight_grad(gy, x, weight.shape, (1, 1), (ph, pw)),
                               **TOLERANCE)
    np.testing.assert_allclose(sums, x.sum(axis=(0, 2, 3)), **TOLERANCE)
    np.testing.assert_allclose(y_alone, textbook.textbook_forward(x, weight, (1, 1), (ph, pw)), **TOLERANCE)
    assert no_gw is None and no_sums is None
    np.testing.assert_allclose(y_relu, textbook.textbook_forward(x * (mask > 0), weight, (1, 1), (ph, pw), bias,
                                                                 relu=True), **TOLERANCE)
    np.testing.assert_allclose(gw_masked, textbook.textbook_weight_grad(gy, x * (mask > 0), weight.shape, (1, 1),
                                                                        (ph, pw)), **TOLERANCE)
    np.testing.assert_allclose(sums_masked, (x * (mask > 0)).sum(axis=(0, 2, 3)), **TOLERANCE)


def test_stacked_rows_are_taken_only_where_they_apply_and_pay():
    def pays(o, c, side, stride=(1, 1), weight_grad=False):
        bands = bands_module.Bands((8, c, side, side), (3, 3), stride, (1, 1), 4)
        return stacked_rows.stacked_rows_pay(bands, o, weight_grad)
    assert pays(16, 16, 128) and pays(32, 16, 128) and pays(32, 16, 64)   # few channels, tall images
    assert pays(16, 16, 128, weight_grad=True)             # trick 6 where dL/dy has as many channels
    assert not pays(32, 16, 128, weight_grad=True)         # ... but not more: G would outgrow R
    assert not pays(16, 3, 128)                            # 3 channels: 9-deep products
    assert not pays(64, 16, 128)                           # 4 outputs per input: Z outgrows R
    assert not pays(64, 64, 32) and not pays(128, 128, 16)   # short images: no gain measured
    assert pays(64, 64, 128) and pays(64, 64, 128, weight_grad=True)   # bands of 30 rows
    wide = bands_module.Bands((1, 16, 1024, 1024), (3, 3), (1, 1), (1, 1), 4)
    assert wide.row_band_rows(16) == 8                     # 4 per extra row, over BAND_BYTES
    assert stacked_rows.stacked_rows_pay(wide, 16)         # forward: 0.78 of the bands' time
    assert not stacked_rows.stacked_rows_pay(wide, 16, True)   # with dL/dw: 1.15
    assert not pays(16, 16, 128, (2, 2))                   # strided: a kernel row is no plain shift
    head = bands_module.Bands((8, 16, 128, 128), (1, 1), (1, 1), (0, 0), 4)
    assert not stacked_rows.stacked_rows_pay(head, 4)      # 1x1: one kernel row, nothing to stack


def test_backward_from_output_columns_is_taken_only_where_it_applies_and_pays():
    def pays(o, c, side, stride=(1, 1), padding=(1, 1)):
        return fast_conv.backward_by_output_columns_pays((8, o, side, side), (o, c, 3, 3), stride, padding, 4)
    assert pays(16, 32, 32) and pays(16, 16, 16)           # no more outputs than inputs
    assert pays(16, 16, 32, padding=(2, 2))                # padding kernel - 1: a "full" convolution
    assert pays(32, 16, 64) and pays(64, 32, 128)          # twice the outputs, by stacked rows: 0.87-0.90
    assert not pays(32, 16, 32)                            # ... not where stacked rows do not pay
    assert not pays(64, 16, 64)                            # four times: dL/dy's columns outgrow x's
    assert not pays(16, 16, 32, (2, 2))                    # strided: the gradient is no plain conv
    assert not pays(16, 16, 32, padding=(3, 1))            # padding >= kernel: would need negative padding


def test_tap_sum_forward_is_taken_only_where_it_applies_and_pays():
    def pays(o, c, side, stride=(1, 1)):
        bands = bands_module.Bands((8, c, side, side), (3, 3), stride, (1, 1), 4)
        return tap_sum.forward_by_taps_pays((o, c, 3, 3), bands)
    assert pays(4, 16, 128)                                # few outputs
    assert pays(16, 32, 128) and pays(64, 64, 32)          # O <= C, deep taps, the sums in cache
    assert not pays(16, 16, 128)                           # C = 16: each tap's product too shallow
    assert not pays(32, 16, 64)                            # more outputs than inputs
    assert not pays(64, 64, 128)                           # one sample's sums: 4.3 MB, out of cache
    assert not pays(64, 64, 32, (2, 2))                    # strided: a tap is no plain view


def test_half_turned_swaps_the_channel_axes_and_turns_each_kernel():
    w = np.arange(2 * 3 * 2 * 3, dtype=float).reshape(2, 3, 2, 3)
    turned = fast_conv.half_turned(w)
    assert turned.shape == (3, 2, 2, 3)
    np.testing.assert_array_equal(turned[1, 0], [[w[0, 1, 1, 2], w[0, 1, 1, 1], w[0, 1, 1, 0]],
                                                 [w[0, 1, 0, 2], w[0, 1, 0, 1], w[0, 1, 0, 0]]])
    np.testing.assert_array_equal(fast_conv.half_turned(turned), w)


def test_bands_cover_every_output_row_once():
    with band_setting((1, 5)):                             # 5 columns, Wq = 7: one row per band
        bands = bands_module.Bands((1, 2, 6, 5), (3, 3), (1, 1), (1, 1), 8)
    assert bands.bands == [(r, r + 1) for r in range(6)]
    with band_setting((1, 15)):                            # two rows per band
        bands = bands_module.Bands((1, 2, 5, 5), (3, 3), (1, 1), (1, 1), 8)
    assert bands.bands == [(0, 2), (2, 4), (4, 5)]


def test_row_bands_cover_every_output_row_once():
    with band_setting((1, 1, 0)):                          # one row per band
        bands = bands_module.Bands((1, 2, 6, 5), (3, 3), (1, 1), (1, 1), 8)
        assert bands.row_bands(4) == [(r, r + 1) for r in range(6)]
    with band_setting((8 * (3 * 2 + 3 * 4) * 7 * 4, 1, 0)):   # room for 4 rows of R and Z: 2 + 2 extra
        bands = bands_module.Bands((1, 2, 5, 5), (3, 3), (1, 1), (1, 1), 8)
        assert bands.row_bands(4) == [(0, 2), (2, 4), (4, 5)]
    with band_setting((8 * (3 * 2 + 3 * 4) * 7 * 4, 1)):      # but at least 4 rows per extra row
        bands = bands_module.Bands((1, 2, 12, 5), (3, 3), (1, 1), (1, 1), 8)
        assert bands.row_bands(4) == [(0, 8), (8, 12)]


def test_stride_phases_hold_every_pixel_once():
    """split puts each pixel of the padded image in exactly one phase; merge undoes it."""
    image = np.arange(2 * 5 * 7, dtype=float).reshape(2, 5, 7) + 1
    bands = bands_module.Bands((1, 2, 5, 7), (3, 3), (2, 3), (1, 2), 8)
    phases = bands.phase_buffer(np, 2, image.dtype)
    bands.split(image, phases)
    assert phases.shape[0] == 6 and sorted(phases[phases != 0].tolist()) == sorted(image.ravel().tolist())
    back = np.zeros_like(image)
    bands.merge(phases, back)
    np.testing.assert_array_equal(back, image)


def test_the_operators_take_the_fast_kernels_on_the_cpu_unless_told_textbook(monkeypatch):
    """conv.py's dispatchers call fast_conv for NumPy arrays, and the textbook kernels inside
    `with kernels("textbook")`."""
    calls = []
    monkeypatch.setattr(fast_conv, "fast_forward", lambda *args: calls.append("fast") or "fast")
    x, w = np.zeros((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    assert textbook.conv_forward(x, w, (1, 1), (0, 0)) == "fast"
    with textbook.kernels("textbook"):
        assert textbook.conv_forward(x, w, (1, 1), (0, 0)).shape == (1, 1, 2, 2)
    assert calls == ["fast"]
