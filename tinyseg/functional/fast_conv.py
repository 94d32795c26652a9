"""The fast convolution: the textbook's im2col, one cache-sized band at a time.

Read tinyseg/functional/conv.py first: there each kernel is the textbook
form, im2col, one matrix product, col2im. Each kernel here is the fast twin
of one of them and computes exactly the same numbers (tests/test_fast_conv.py
checks every pair on drawn shapes):

    fast_forward              textbook_forward              y  = W @ im2col(x)
    fast_input_grad           textbook_input_grad           gx = col2im(W^T @ gy)
    fast_weight_grad          textbook_weight_grad          gw = gy @ im2col(x)^T
    fast_backward             textbook_backward             gx and gw of conv
    fast_transpose_backward   textbook_transpose_backward   gx and gw of conv_transpose

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

4. Few outputs: no columns at all. For a layer with few output channels and
   a large kernel (the 11x11 head of SlidingWindow.to_fcn(), 4 outputs from
   16 channels), a product does little work per copied number. Then
   forward_by_taps sums W[:, :, i, j] (O, C) @ shifted view (C, L) over
   the kh*kw taps, reading the one padded image, which stays in cache, kh*kw
   times; nothing is copied.

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
   O <= C, so fast_backward keeps the bands for more outputs than inputs,
   for strides above 1, and when only one gradient is needed.

7. The batch on the cores. Each function here loops over the samples; the
   loop runs in shares, one per core (sample_threads.over_samples), each
   share with its own phase and column buffers and its BLAS on one thread,
   so that a core multiplies the columns it has just copied, out of its own
   cache. The weight gradient's per-share sums are added in share order.

The geometry of phases and bands (tricks 1-3) is the class Bands in bands.py.

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
from tinyseg.functional.bands import Bands
from tinyseg.functional.sample_threads import over_samples

FEW_OUTPUTS = 4             # stride-1 forward sums taps when out_channels * FEW_OUTPUTS <= in_channels


# ----------------------------------------------------------------- the fast twins conv.py calls
def fast_forward(x, w, stride: tuple, padding: tuple):
    """Fast twin of textbook_forward: y = conv(x, w), (N, C, H, W), (O, C, kh, kw) -> (N, O, OH, OW).

    Band by band (tricks 1-3), or by taps for few outputs (trick 4).
    """
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    if tuple(stride) == (1, 1) and o * FEW_OUTPUTS <= c:
        return forward_by_taps(x, w, Bands(x.shape, (kh, kw), stride, padding, x.itemsize))
    return forward_and_weight_grad(x, w, None, stride, padding)[0]


def fast_input_grad(gy, w, input_shape: tuple, stride: tuple, padding: tuple):
    """Fast twin of textbook_input_grad: dL/dx of conv, (N, O, OH, OW) -> input_shape (N, C, H, W).

    Also the transpose convolution's forward.
    """
    return band_backward(gy, tuple(input_shape), w.shape, stride, padding, w=w)[0]


def fast_weight_grad(gy, x, weight_shape: tuple, stride: tuple, padding: tuple):
    """Fast twin of textbook_weight_grad: dL/dw of conv, (N, O, OH, OW), (N, C, H, W) -> weight_shape."""
    return band_backward(gy, x.shape, tuple(weight_shape), stride, padding, x=x)[1]


def fast_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                  need_weight: bool = True):
    """Fast twin of textbook_backward: (dL/dx, dL/dw) of y = conv(x, w), either None when not needed.

    gy (N, O, OH, OW), x (N, C, H, W), w (O, C, kh, kw). Both gradients of a
    stride-1 convolution with O <= C come from dL/dy's columns (trick 6), the
    rest from one pass over the bands.
    """
    if need_input and need_weight and backward_by_output_columns_pays(w.shape, stride, padding):
        return backward_by_output_columns(gy, x, w, padding)
    return band_backward(gy, x.shape, w.shape, stride, padding,
                         w=w if need_input else None, x=x if need_weight else None)


def fast_transpose_backward(gy, x, w, stride: tuple, padding: tuple, need_input: bool = True,
                            need_weight: bool = True):
    """Fast twin of textbook_transpose_backward: (dL/dx, dL/dw) of y = conv_transpose(x, w).

    gy (N, C_out, OH, OW), x (N, C_in, H, W), w (C_in, C_out, kh, kw); either
    result None when not needed. As in the textbook form, in conv's terms gy is
    the image and x the output gradient; both products read gy's columns,
    built once when both are needed (trick 5).
    """
    image, out_grad = gy, x                                              # conv's roles
    if need_input and need_weight:
        return forward_and_weight_grad(image, w, out_grad, stride, padding)
    gx = fast_forward(image, w, stride, padding) if need_input else None
    gw = fast_weight_grad(out_grad, image, w.shape, stride, padding) if need_weight else None
    return gx, gw


# ----------------------------------------------------------------- the bands and their products
def tap_major(w):
    """(O, C, kh, kw) weight -> (O, kh*kw*C) matrix whose columns follow the bands' (tap, channel) rows."""
    o = w.shape[0]
    return w.transpose(0, 2, 3, 1).reshape(o, -1)


def weight_from_tap_major(gw_t, kernel: tuple, channels: int):
    """(K, O) weight gradient with (tap, channel) rows -> the (O, C, kh, kw) layout of the weight."""
    o = gw_t.shape[1]
    return gw_t.reshape(kernel[0], kernel[1], channels, o).transpose(3, 2, 0, 1).copy()


def forward_and_weight_grad(image, w, out_grad, stride: tuple, padding: tuple):
    """(conv(image, w), its dL/dw for the output gradient out_grad, or None without one).

    image (N, C, H, W), w (O, C, kh, kw), out_grad None or (N, O, OH, OW). Both
    products read the same band of columns: y_band = W @ cols and
    dL/dw += cols @ out_grad_band^T (trick 5; trick 6 calls it too). The
    samples run in shares on the cores (trick 7), each share with its own buffers.
    """
    xp = backend.get_array_module(image)
    n, c = image.shape[:2]
    o, _, kh, kw = w.shape
    bands = Bands(image.shape, (kh, kw), stride, padding, image.itemsize)
    band_width = bands.band_rows * bands.width
    w_rows = tap_major(w)                                                # (O, K)
    y = xp.empty((n, o, bands.out_h, bands.out_w), dtype=image.dtype)

    def share(start, stop):                     # samples start..stop-1: fills y, returns their dL/dw
        phases = bands.phase_buffer(xp, c, image.dtype)                  # (P, C, rows, Wq)
        flat = phases.reshape(bands.phases, c, -1)                       # (P, C, rows*Wq)
        cols_buffer = xp.empty((bands.depth, band_width), dtype=image.dtype)
        out_buffer = xp.empty((o, band_width), dtype=image.dtype)
        gw_t = None
        if out_grad is not None:
            gy_buffer = xp.zeros((o, band_width), dtype=out_grad.dtype)  # junk columns stay zero
            gw_t = xp.zeros((bands.depth, o), dtype=out_grad.dtype)      # (K, O), tap-major rows
        for sample in range(start, stop):
            bands.split(image[sample], phases)
            for r0, r1 in bands.bands:
                cols = bands.columns(flat, (r0, r1), cols_buffer)         # (K, L)
                out = xp.matmul(w_rows, cols, out=out_buffer[:, :cols.shape[1]])   # (O, K) @ (K, L)
                y[sample, :, r0:r1] = out.reshape(o, r1 - r0, bands.width)[:, :, :bands.out_w]
                if out_grad is not None:
                    gy_grid = bands.widen(out_grad[sample], (r0, r1), gy_buffer)   # (O, L)
                    gw_t += cols @ gy_grid.T                             # (K, L) @ (L, O)
        return gw_t

    parts = over_samples(share, image)
    if out_grad is None:
        return y, None
    return y, weight_from_tap_major(sum(parts[1:], parts[0]), (kh, kw), c)


def forward_by_taps(x, w, bands: Bands):
    """Stride-1 y = conv(x, w) as a sum over the kh*kw taps of (O, C) @ (C, L) products on views.

    Trick 4 above: y_grid = sum over taps (i, j) of W[:, :, i, j] @ flat[:, shift_ij : shift_ij + L],
    with L = OH * Wq the sample's whole grid; no column buffer.
    """
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    length = bands.out_h * bands.width                                   # L
    y = xp.empty((n, o, bands.out_h, bands.out_w), dtype=x.dtype)
    taps = [(i, j) for i in range(kh) for j in range(kw)]

    def share(start, stop):                                              # fills y[start:stop]
        phases = bands.phase_buffer(xp, c, x.dtype)                      # (1, C, rows, Wq)
        flat = phases.reshape(c, -1)                                     # (C, rows*Wq)
        for sample in range(start, stop):
            bands.split(x[sample], phases)
            y_grid = xp.zeros((o, length), dtype=x.dtype)                # (O, L)
            for (i, j), (_, shift) in zip(taps, bands.taps):
                y_grid += w[:, :, i, j] @ flat[:, shift:shift + length]   # (O, C) @ (C, L)
            y[sample] = y_grid.reshape(o, bands.out_h, bands.width)[:, :, :bands.out_w]

    over_samples(share, x)
    return y


def backward_by_output_columns_pays(weight_shape: tuple, stride: tuple, padding: tuple) -> bool:
    """Trick 6 applies (stride 1, padding at most kernel - 1) and pays (O <= C)."""
    o, c, kh, kw = weight_shape
    return tuple(stride) == (1, 1) and padding[0] < kh and padding[1] < kw and o <= c


def backward_by_output_columns(gy, x, w, padding: tuple):
    """(dL/dx, dL/dw) of a stride-1 y = conv(x, w), both from one pass over dL/dy's columns.

    Trick 6 above: dL/dx = conv(dL/dy, w', padding kernel - 1 - padding) and
    dL/dw = turn(dL/dw'), w' = turn(w), with turn(v)[b, a, i, j] = v[a, b, kh-1-i, kw-1-j].
    gy (N, O, OH, OW), x (N, C, H, W), w (O, C, kh, kw).
    """
    kh, kw = w.shape[2:]
    full_padding = (kh - 1 - padding[0], kw - 1 - padding[1])
    image, out_grad = gy, x                                              # the roles in conv(dL/dy, w')
    gx, gw_turned = forward_and_weight_grad(image, half_turned(w), out_grad, (1, 1), full_padding)
    return gx, half_turned(gw_turned)                                  # (N, C, H, W), (O, C, kh, kw)


def half_turned(w):
    """(A, B, kh, kw) -> (B, A, kh, kw): in/out axes swapped, each kernel turned by 180 degrees."""
    xp = backend.get_array_module(w)
    return xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def band_backward(gy, input_shape: tuple, weight_shape: tuple, stride: tuple, padding: tuple,
                  w=None, x=None):
    """(dL/dx, dL/dw) of conv, band by band: dL/dx when the weight w is given, dL/dw when the input x is.

    gy (N, O, OH, OW); input_shape (N, C, H, W) and weight_shape (O, C, kh, kw)
    give the geometry; a gradient whose array is not given comes back as None.
    Each band of dL/dy is widened once for both products; the samples run in
    shares on the cores (trick 7).
    """
    xp = backend.get_array_module(gy)
    n, c = input_shape[:2]
    o, _, kh, kw = weight_shape
    bands = Bands(input_shape, (kh, kw), stride, padding, gy.itemsize)
    band_width = bands.band_rows * bands.width
    w_cols = None if w is None else tap_major(w).T                       # (K, O)
    gx = None if w is None else xp.empty(input_shape, dtype=gy.dtype)    # (N, C, H, W)

    def share(start, stop):                    # samples start..stop-1: fills gx, returns their dL/dw
        gy_buffer = xp.zeros((o, band_width), dtype=gy.dtype)            # junk columns stay zero
        gw_t = None
        if w is not None:
            gcols_buffer = xp.empty((bands.depth, band_width), dtype=gy.dtype)
            gphases = bands.phase_buffer(xp, c, gy.dtype)                # (P, C, rows, Wq)
            gflat = gphases.reshape(bands.phases, c, -1)
        if x is not None:
            phases = bands.phase_buffer(xp, c, x.dtype)
            flat = phases.reshape(bands.phases, c, -1)
            cols_buffer = xp.empty((bands.depth, band_width), dtype=x.dtype)
            gw_t = xp.zeros((bands.depth, o), dtype=gy.dtype)            # (K, O), tap-major rows
        for sample in range(start, stop):
            if w is not None:
                gphases.fill(0)
            if x is not None:
                bands.split(x[sample], phases)
            for band in bands.bands:
                gy_grid = bands.widen(gy[sample], band, gy_buffer)       # (O, L)
                if w is not None:
                    gcols = xp.matmul(w_cols, gy_grid, out=gcols_buffer[:, :gy_grid.shape[1]])  # (K, O) @ (O, L)
                    bands.add_columns(gcols, band, gflat)
                if x is not None:
                    cols = bands.columns(flat, band, cols_buffer)        # (K, L)
                    gw_t += cols @ gy_grid.T                             # (K, L) @ (L, O)
            if w is not None:
                bands.merge(gphases, gx[sample])
        return gw_t

    parts = over_samples(share, gy)
    if x is None:
        return gx, None
    return gx, weight_from_tap_major(sum(parts[1:], parts[0]), (kh, kw), c)
