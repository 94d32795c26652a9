"""The fast convolution: the textbook's im2col, one cache-sized band at a time.

Read tinyseg/functional/conv.py first: there each kernel is the textbook
form, im2col, one matrix product, col2im. Each kernel here is the fast twin
of one of them and computes exactly the same numbers (tests/test_fast_conv.py
checks every pair on drawn shapes):

    fast_forward              textbook_forward              y  = W @ im2col(x) + b
    fast_input_grad           textbook_input_grad           gx = col2im(W^T @ gy)
    fast_weight_grad          textbook_weight_grad          gw = gy @ im2col(x)^T
    fast_backward             textbook_backward             gx, gw and gb of conv
    fast_transpose_forward    textbook_transpose_forward    y = conv_transpose(x, w) + b
    fast_transpose_backward   textbook_transpose_backward   gx, gw and gb of conv_transpose

conv.py runs these on NumPy arrays unless told `with kernels("textbook"):`.
Why they exist: on a CPU, memory is slow next to arithmetic, and the textbook
form writes its whole column matrix (kh*kw copies of the image: 300 MB for a
batch of 8 64-channel 128x128 float32 images) to memory and reads it back for
the product. The tricks below remove that traffic; what each one measured,
and what was tried and dropped, is in benchmarks/results/kernels.md.

1. Bands. The columns of one sample are built for a band of output rows at
   a time, a block of about BAND_BYTES that stays in the CPU's cache, and
   multiplied at once: each number is copied into cache and read from cache,
   and only the image and the output ever travel to and from memory.

2. Contiguous taps (a "wide" grid). Output pixels are computed on rows as
   wide as the padded image, Wp instead of OW, so that for a kernel tap
   (i, j) the band's columns are ONE contiguous run of the flattened padded
   image: a tap is a single slice copy, not OH short row copies. The few junk
   columns past the output's right edge are dropped from the output and
   get zero gradient.

3. Stride phases. A stride-s convolution reads every s-th pixel, which
   breaks the contiguous runs. Split the padded image into its s_h * s_w
   phases, phase (a, b) = padded[a::s_h, b::s_w]; tap (i, j) then reads
   phase (i % s_h, j % s_w) at offset (i // s_h, j // s_w), one pixel per
   output pixel, so inside a phase the strided convolution is a stride-1 one
   and trick 2 applies. Splitting costs one pass over the image, the same
   as padding it (for stride 1 the only phase IS the padded image).

Backward runs the same bands (band_backward): the input gradient multiplies
W^T with the band of dL/dy and adds each tap's rows back onto its phase
(col2im, in cache), the weight gradient adds cols @ gy^T band by band, both
in one pass so that each band of dL/dy is prepared once.

4. No columns in the forward where outputs are no more than inputs
   (stride 1, tap_sum.py). y is the sum over the kh*kw taps of
   W[:, :, i, j] (O, C) @ a shifted VIEW of the padded image (C, L): the image
   stays in cache, no columns are copied, and kh*kw - 1 additions of (O, L)
   sums are paid instead; where O <= C with deep taps (C >= 32) and one
   sample's sums fit in cache, or where O is small beside C.

5. One column pass for two products. The transpose convolution's backward
   needs conv(dL/dy, w) (its input gradient) and conv's weight gradient
   with dL/dy as the image (its weight gradient): both read the columns
   of dL/dy, so forward_and_weight_grad builds each band once for both.

6. The backward from dL/dy's columns alone. For stride 1, conv's input
   gradient is itself a convolution: dL/dy, padded by kh - 1 - ph rows and
   kw - 1 - pw columns, convolved with the weight turned half a turn and with
   its in/out axes swapped, w'[c, o, i, j] = w[o, c, kh-1-i, kw-1-j]:

       dL/dx = conv(dL/dy, w', padding (kh-1-ph, kw-1-pw))       (N, C, H, W)

   and the weight gradient of THAT convolution, taking x as its output
   gradient, is conv's weight gradient turned back the same way:

       dL/dw[o, c, i, j] = dL/dw'[c, o, kh-1-i, kw-1-j]

   (both sums run over the same products dL/dy[o, u, v] * x[c, u+i-ph, v+j-pw]).
   So forward_and_weight_grad (trick 5) gives both gradients from ONE set of
   columns, those of dL/dy, with deep products (contraction over O*kh*kw, not
   O) and no col2im at all: no gradient columns are written and then added
   back tap by tap. It pays where dL/dy's columns are no larger than x's,
   O <= C, and up to O = 2C where they are stacked rows (trick 10), so
   fast_backward keeps the bands for more outputs than that, for strides
   above 1, and when only one gradient is needed.

7. The batch on the cores. Each function here loops over the samples; the
   loop runs in shares, one per core (sample_threads.over_samples), each
   share with its own phase and column buffers and its BLAS on one thread,
   so that a core multiplies the columns it has just copied, out of its own
   cache. The weight gradient's per-share sums are added in share order, and
   its products let the other share run (sample_threads.matmul_without_gil).

8. The bias in the band. y = conv(x, w) + b adds b to each band of y while
   the band is in cache, and dL/db = the sum of dL/dy over samples and pixels
   is summed from the bands (or phases) of dL/dy that backward prepares
   anyway: no pass of its own over y or dL/dy, and both run on the cores.
   The transpose convolution's bias is added to each sample of its output
   and summed from the phases of its dL/dy the same way.

9. Windows that tile. Where kernel == stride (the U-Net's 2x2 stride-2
   transpose convolutions, 1x1 heads), each pixel lies in one window and
   tap (i, j) is phase (i, j) at shift 0: a band's columns are a view of
   the phases (Bands.columns), col2im is no add at all (band_backward's
   product is written straight into that view of the zeroed phases, each
   pixel once), and dL/dy needs no widening where its rows have no junk
   columns (Bands.widen).

10. Kernel rows stacked (stride 1, from 16 channels, stacked_rows.py). With
   columns of the kw taps of each kernel row only, R = kw shifted copies, one
   product W_rows (kh*O, kw*C) @ R gives each kernel row's sums, and kh - 1
   shifted adds give y: kh times fewer copies, a product kh times taller (a
   thin one, O = 16, runs far below the BLAS's rate). fast_forward and trick 6
   take it instead of forward_and_weight_grad where it pays.

11. ReLU in the kernels (conv.py's conv2d_relu, the U-Net's blocks). Its
   forward takes max(y, 0) of each band (or sample's grid) while the band is
   in cache, after the bias. Its backward gets dL/d relu(y) and needs
   dL/dy = dL/d relu(y) * (relu(y) > 0): each sample of it is masked into a
   buffer as the sample is first read (activation.relu_backward_sample, the
   rule ReLU's own backward runs), and the kernels read that buffer where they
   read dL/dy's sample. Neither pass goes over memory on its own, and no
   (N, O, OH, OW) array is made for either.

The geometry of phases and bands (tricks 1-3, 9, 10) is the class Bands in bands.py.

Nothing is kept between forward and backward: these are plain functions of
arrays, and backward builds its bands again from x and w, which conv.py's
closures hold (so the graph never holds kh*kw copies of an image).

Row order inside a band's columns is (tap, channel), not im2col's (channel,
tap): each tap's C rows are then one contiguous block. The weight matrix
is permuted to match once per call (O x C*kh*kw numbers, tiny).

These are CPU tricks (a GPU has no such cache to fit): conv.py uses this
module for NumPy arrays and the textbook form for CuPy arrays, although
the code here runs unchanged on both.
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional.activation import relu_buffers, relu_passed
from tinyseg.functional.bands import Bands
from tinyseg.functional.sample_threads import in_order_sum, matmul_without_gil, over_samples
from tinyseg.functional.stacked_rows import forward_and_weight_grad_by_rows, stacked_rows_pay
from tinyseg.functional.tap_sum import forward_by_taps, forward_by_taps_pays

MOST_OUTPUTS_PER_INPUT = 2      # trick 6 with more outputs than inputs: up to twice as many, by stacked
                                # rows (16->32 @64 and @128, 32->64 @64: 0.87-0.90 of the bands' time)


# ----------------------------------------------------------------- the fast twins conv.py calls
def fast_forward(x, w, stride: tuple, padding: tuple, bias=None, relu: bool = False):
    """Fast twin of textbook_forward: y = conv(x, w) + bias, (N, C, H, W), (O, C, kh, kw) -> (N, O, OH, OW).

    Band by band (tricks 1-3), or by stacked rows or by taps where that pays
    (tricks 10 and 4); the bias (O,) or None is added in the band (trick 8),
    and with relu, max(y, 0) is taken there too (trick 11).
    """
    bands = Bands(x.shape, w.shape[2:], stride, padding, x.itemsize)
    if stacked_rows_pay(bands, w.shape[0]):
        return forward_and_weight_grad_by_rows(x, w, None, padding, bias, relu=relu)[0]
    if forward_by_taps_pays(w.shape, bands):
        return forward_by_taps(x, w, bands, bias, relu)
    return forward_and_weight_grad(x, w, None, stride, padding, bias, relu=relu)[0]


def fast_input_grad(gy, w, input_shape: tuple, stride: tuple, padding: tuple):
    """Fast twin of textbook_input_grad: dL/dx of conv, (N, O, OH, OW) -> input_shape (N, C, H, W)."""
    return band_backward(gy, tuple(input_shape), w.shape, stride, padding, w=w)[0]


def fast_weight_grad(gy, x, weight_shape: tuple, stride: tuple, padding: tuple):
    """Fast twin of textbook_weight_grad: dL/dw of conv, (N, O, OH, OW), (N, C, H, W) -> weight_shape."""
    return band_backward(gy, x.shape, tuple(weight_shape), stride, padding, x=x)[1]


def fast_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                  need_weight: bool = True, need_bias: bool = False, relu_output=None):
    """Fast twin of textbook_backward: (dL/dx, dL/dw, dL/db) of y = conv(x, w) + b, each None if not needed.

    gy (N, O, OH, OW), x (N, C, H, W), w (O, C, kh, kw). Both gradients of a
    stride-1 convolution with O <= C (O <= 2C by stacked rows) come from dL/dy's
    columns (trick 6), the rest from one pass over the bands; dL/db (O,) is
    summed on the way (trick 8).
    relu_output None, or relu(y) (N, O, OH, OW): then gy is dL/d relu(y), masked
    by relu_output > 0 sample by sample as the kernels read it (trick 11).
    """
    if need_input and need_weight and backward_by_output_columns_pays(gy.shape, w.shape, stride, padding,
                                                                      gy.itemsize):
        return backward_by_output_columns(gy, x, w, padding, need_bias, relu_output)
    return band_backward(gy, x.shape, w.shape, stride, padding, w=w if need_input else None,
                         x=x if need_weight else None, need_bias=need_bias, gy_mask=relu_output)


def fast_transpose_forward(x, w, output_shape: tuple, stride: tuple, padding: tuple, bias=None):
    """Fast twin of textbook_transpose_forward: y = conv_transpose(x, w) + bias, conv's dL/dx for dL/dy = x.

    x (N, C_in, H, W), w (C_in, C_out, kh, kw), output_shape (N, C_out, OH, OW);
    the bias (C_out,) or None is added to each sample's output in cache (trick 8).
    """
    return band_backward(x, tuple(output_shape), w.shape, stride, padding, w=w, input_bias=bias)[0]


def fast_transpose_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                            need_weight: bool = True, need_bias: bool = False):
    """Fast twin of textbook_transpose_backward: (dL/dx, dL/dw, dL/db) of y = conv_transpose(x, w) + b.

    gy (N, C_out, OH, OW), x (N, C_in, H, W), w (C_in, C_out, kh, kw); each
    result None when not needed. As in the textbook form, in conv's terms gy is
    the image and x the output gradient; both products read gy's columns,
    built once when both are needed (trick 5), and dL/db, gy's channel sums,
    comes from its phases (trick 8).
    """
    image, out_grad = gy, x                                              # conv's roles
    if need_input and need_weight:
        return forward_and_weight_grad(image, w, out_grad, stride, padding, image_sums=need_bias)
    gx = fast_forward(image, w, stride, padding) if need_input else None
    gw = fast_weight_grad(out_grad, image, w.shape, stride, padding) if need_weight else None
    return gx, gw, (image.sum(axis=(0, 2, 3)) if need_bias else None)


# ----------------------------------------------------------------- the bands and their products
def tap_major(w):
    """(O, C, kh, kw) weight -> (O, kh*kw*C) matrix whose columns follow the bands' (tap, channel) rows."""
    o = w.shape[0]
    return w.transpose(0, 2, 3, 1).reshape(o, -1)


def weight_from_tap_major(gw_t, kernel: tuple, channels: int):
    """(K, O) weight gradient with (tap, channel) rows -> the (O, C, kh, kw) layout of the weight."""
    o = gw_t.shape[1]
    return gw_t.reshape(kernel[0], kernel[1], channels, o).transpose(3, 2, 0, 1).copy()


def forward_and_weight_grad(image, w, out_grad, stride: tuple, padding: tuple, bias=None,
                            image_sums: bool = False, relu: bool = False, image_mask=None):
    """(conv(image, w) + bias, its dL/dw for the output gradient out_grad, image's channel sums).

    image (N, C, H, W), w (O, C, kh, kw), out_grad None or (N, O, OH, OW), bias
    None or (O,). Both products read the same band of columns: y_band =
    W @ cols (+ bias, trick 8) and dL/dw += cols @ out_grad_band^T (trick 5;
    trick 6 calls it too). dL/dw is None without out_grad; the sums (C,) of
    image over samples and pixels, None unless image_sums, come from its
    phases (trick 6's dL/db, trick 8). relu: max(y, 0) in the band; image_mask
    None, or an array shaped like image: each sample of image is taken times
    (image_mask > 0) (trick 11, where the image is dL/d relu(y) of trick 6).
    The samples run in shares on the cores (trick 7), each share with its own
    buffers.
    """
    xp = backend.get_array_module(image)
    n, c = image.shape[:2]
    o, _, kh, kw = w.shape
    bands = Bands(image.shape, (kh, kw), stride, padding, image.itemsize)
    band_width = bands.band_rows * bands.width
    w_rows = tap_major(w)                                                # (O, K)
    bias_column = None if bias is None else bias.reshape(o, 1)           # (O, 1)
    y = xp.empty((n, o, bands.out_h, bands.out_w), dtype=image.dtype)

    def share(start, stop):        # samples start..stop-1: fills y, returns their (dL/dw, image sums)
        phases = bands.phase_buffer(xp, c, image.dtype)                  # (P, C, rows, Wq)
        flat = phases.reshape(bands.phases, c, -1)                       # (P, C, rows*Wq)
        cols_buffer = xp.empty((bands.depth, band_width), dtype=image.dtype)
        out_buffer = xp.empty((o, band_width), dtype=image.dtype)
        gw_t = sums = None
        if out_grad is not None:
            gy_buffer = xp.zeros((o, band_width), dtype=out_grad.dtype)  # junk columns stay zero
            gw_t = xp.zeros((bands.depth, o), dtype=out_grad.dtype)      # (K, O), tap-major rows
        if image_sums:
            sums = xp.zeros(c, dtype=image.dtype)                        # (C,)
        mask_buffers = relu_buffers(xp, image_mask)
        for sample in range(start, stop):
            bands.split(relu_passed(image, image_mask, sample, mask_buffers), phases)
            if image_sums:
                sums += flat.sum(axis=(0, 2))                            # padding adds zeros
            for r0, r1 in bands.bands:
                cols = bands.columns(flat, (r0, r1), cols_buffer)         # (K, L)
                out = xp.matmul(w_rows, cols, out=out_buffer[:, :cols.shape[1]])   # (O, K) @ (K, L)
                if bias is not None:
                    out += bias_column
                if relu:
                    xp.maximum(out, 0, out=out)
                y[sample, :, r0:r1] = out.reshape(o, r1 - r0, bands.width)[:, :, :bands.out_w]
                if out_grad is not None:
                    gy_grid = bands.widen(out_grad[sample], (r0, r1), gy_buffer)   # (O, L)
                    gw_t += matmul_without_gil(cols, gy_grid.T)          # (K, L) @ (L, O)
        return gw_t, sums

    parts = over_samples(share, image)
    gw_parts, sum_parts = zip(*parts)
    gw = None if out_grad is None else weight_from_tap_major(in_order_sum(gw_parts), (kh, kw), c)
    return y, gw, (in_order_sum(sum_parts) if image_sums else None)


def backward_by_output_columns_pays(gy_shape: tuple, weight_shape: tuple, stride: tuple, padding: tuple,
                                    itemsize: int) -> bool:
    """Trick 6 applies (stride 1, padding at most kernel - 1) and pays: where O <= C, and where
    C < O <= MOST_OUTPUTS_PER_INPUT * C with dL/dy's columns as stacked rows (trick 10)."""
    o, c, kh, kw = weight_shape
    if tuple(stride) != (1, 1) or padding[0] >= kh or padding[1] >= kw:
        return False
    return o <= c or (o <= MOST_OUTPUTS_PER_INPUT * c
                      and backward_by_output_rows_pays(gy_shape, weight_shape, padding, itemsize))


def backward_by_output_rows_pays(gy_shape: tuple, weight_shape: tuple, padding: tuple, itemsize: int) -> bool:
    """Trick 6 runs faster on dL/dy's columns as stacked rows (trick 10) than as bands."""
    kh, kw = weight_shape[2:]
    full_padding = (kh - 1 - padding[0], kw - 1 - padding[1])
    return stacked_rows_pay(Bands(gy_shape, (kh, kw), (1, 1), full_padding, itemsize), weight_shape[1], True)


def backward_by_output_columns(gy, x, w, padding: tuple, need_bias: bool = False, relu_output=None):
    """(dL/dx, dL/dw, dL/db or None) of a stride-1 y = conv(x, w) + b, from one pass over dL/dy's columns.

    Trick 6 above: dL/dx = conv(dL/dy, w', padding kernel - 1 - padding) and
    dL/dw = turn(dL/dw'), w' = turn(w), with turn(v)[b, a, i, j] = v[a, b, kh-1-i, kw-1-j];
    dL/db is the channel sums of dL/dy, that convolution's image (trick 8).
    gy (N, O, OH, OW), x (N, C, H, W), w (O, C, kh, kw); relu_output None or
    relu(y), which masks gy sample by sample (trick 11).
    """
    kh, kw = w.shape[2:]
    full_padding = (kh - 1 - padding[0], kw - 1 - padding[1])
    image, out_grad, turned = gy, x, half_turned(w)                      # the roles in conv(dL/dy, w')
    if backward_by_output_rows_pays(gy.shape, w.shape, padding, gy.itemsize):
        gx, gw_turned, gb = forward_and_weight_grad_by_rows(image, turned, out_grad, full_padding,
                                                            image_sums=need_bias,
                                                            image_mask=relu_output)    # trick 10
    else:
        gx, gw_turned, gb = forward_and_weight_grad(image, turned, out_grad, (1, 1), full_padding,
                                                    image_sums=need_bias, image_mask=relu_output)
    return gx, half_turned(gw_turned), gb                 # (N, C, H, W), (O, C, kh, kw), (O,) or None


def half_turned(w):
    """(A, B, kh, kw) -> (B, A, kh, kw): in/out axes swapped, each kernel turned by 180 degrees."""
    xp = backend.get_array_module(w)
    return xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def band_backward(gy, input_shape: tuple, weight_shape: tuple, stride: tuple, padding: tuple,
                  w=None, x=None, need_bias: bool = False, input_bias=None, gy_mask=None):
    """(dL/dx, dL/dw, dL/db) of conv, band by band: dL/dx given the weight w, dL/dw given the input x.

    gy (N, O, OH, OW); input_shape (N, C, H, W) and weight_shape (O, C, kh, kw)
    give the geometry; a gradient whose array is not given, or dL/db (O,)
    unless need_bias, comes back as None. Each band of dL/dy is widened once
    for both products and summed for dL/db (trick 8); the samples run in
    shares on the cores (trick 7). input_bias (C,) or None is added to each
    sample of dL/dx: the transpose convolution's bias, as dL/dx is its output.
    gy_mask None, or relu(y) shaped like gy: each sample of gy is taken times
    (gy_mask > 0) (trick 11).
    """
    xp = backend.get_array_module(gy)
    n, c = input_shape[:2]
    o, _, kh, kw = weight_shape
    bands = Bands(input_shape, (kh, kw), stride, padding, gy.itemsize)
    band_width = bands.band_rows * bands.width
    w_cols = None if w is None else tap_major(w).T                       # (K, O)
    gx = None if w is None else xp.empty(input_shape, dtype=gy.dtype)    # (N, C, H, W)

    def share(start, stop):             # samples start..stop-1: fills gx, returns their (dL/dw, dL/db)
        gy_buffer = xp.zeros((o, band_width), dtype=gy.dtype)            # junk columns stay zero
        gw_t = None
        gb = xp.zeros(o, dtype=gy.dtype) if need_bias else None          # (O,)
        if w is not None:
            gcols_buffer = None if bands.tiles else xp.empty((bands.depth, band_width), dtype=gy.dtype)
            gphases = bands.phase_buffer(xp, c, gy.dtype)                # (P, C, rows, Wq)
            gflat = gphases.reshape(bands.phases, c, -1)
        if x is not None:
            phases = bands.phase_buffer(xp, c, x.dtype)
            flat = phases.reshape(bands.phases, c, -1)
            cols_buffer = xp.empty((bands.depth, band_width), dtype=x.dtype)
            gw_t = xp.zeros((bands.depth, o), dtype=gy.dtype)            # (K, O), tap-major rows
        mask_buffers = relu_buffers(xp, gy_mask)
        for sample in range(start, stop):
            gy_sample = relu_passed(gy, gy_mask, sample, mask_buffers)  # (O, OH, OW)
            if w is not None and not bands.tiles:
                gphases.fill(0)                                          # col2im adds onto zeros
            if x is not None:
                bands.split(x[sample], phases)
            for band in bands.bands:
                gy_grid = bands.widen(gy_sample, band, gy_buffer)        # (O, L)
                if need_bias:
                    gb += gy_grid.sum(axis=1)                            # junk columns add zeros
                if w is not None and bands.tiles:                        # trick 9: each pixel written once
                    xp.matmul(w_cols, gy_grid, out=bands.columns(gflat, band, None))   # (K, O) @ (O, L)
                elif w is not None:
                    gcols = xp.matmul(w_cols, gy_grid, out=gcols_buffer[:, :gy_grid.shape[1]])  # (K, O) @ (O, L)
                    bands.add_columns(gcols, band, gflat)
                if x is not None:
                    cols = bands.columns(flat, band, cols_buffer)        # (K, L)
                    gw_t += matmul_without_gil(cols, gy_grid.T)          # (K, L) @ (L, O)
            if w is not None:
                bands.merge(gphases, gx[sample])
                if input_bias is not None:
                    gx[sample] += input_bias.reshape(c, 1, 1)
        return gw_t, gb

    gw_parts, gb_parts = zip(*over_samples(share, gy))
    gw = None if x is None else weight_from_tap_major(in_order_sum(gw_parts), (kh, kw), c)
    return gx, gw, (in_order_sum(gb_parts) if need_bias else None)
