"""Trick 10 of fast_conv.py: the kernel's rows stacked into the product's rows (stride 1).

Read fast_conv.py first; this is one more way to compute its
forward_and_weight_grad, for stride 1, where it pays.

A band's columns (trick 1) hold kh*kw shifted copies of the image, one per
kernel tap, and the product W (O, kh*kw*C) @ cols has O rows. With few output
channels (16, say) that product is thin, and the BLAS runs it far below its
rate (68 GFLOP/s a core for O = 16 on the Intel Xeon of
benchmarks/results/kernels.md, against 130 for O = 128). Group the taps by
kernel row i instead. On the wide grid of trick 2 (rows Wq long), tap (i, j)
reads the image at shift i*Wq + j, so with the ROW COLUMNS

    R[(j, c), q] = image[c, q + j]        kw shifted copies: (kw*C, L + (kh-1)*Wq)

one product gives every kernel row's partial sums at once, and kh shifted
adds finish the output:

    Z = W_rows @ R                        W_rows[(i, o), (j, c)] = w[o, c, i, j]: (kh*O, kw*C)
    y[o, p] = sum_i Z[(i, o), p + i*Wq]   for the band's L output columns p

The same multiplications as the bands' product, in a product kh times taller
(kh*O rows), on columns kh times smaller (kw*C rows): fewer copies for the
columns and for the BLAS's packing of them. Paid for with kh - 1 extra output
rows per band (Z starts kh - 1 rows early for the last kernel row) and the
kh - 1 adds of (O, L).

The weight gradient for an output gradient g reads the same R (trick 5):

    dL/dW_rows[(i, o), (j, c)] = sum_p g[o, p] R[(j, c), p + i*Wq] = (G @ R^T)[(i, o), (j, c)]
    G[(i, o), q] = g[o, q - i*Wq]         g placed kh times, each block i rows later: (kh*O, L + (kh-1)*Wq)

so forward_and_weight_grad_by_rows serves both fast_forward (no g) and
trick 6's backward (g = x, with dL/dy as the image), as
forward_and_weight_grad does. Where it pays was measured, layer by layer
(benchmarks/results/kernels.md): from 16 channels, on images of 64 rows or
more, with at most twice as many outputs as inputs; for trick 6 only where
dL/dy has at least as many channels as x (where x has more, its kh stacked
copies G cost more than the smaller R saves) and bands have at least 8 rows
for each extra one (4 for the forward alone, Bands.row_band_rows).
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional.activation import relu_buffers, relu_passed
from tinyseg.functional.bands import Bands
from tinyseg.functional.sample_threads import in_order_sum, matmul_without_gil, over_samples

ROWS_FROM_CHANNELS = 16     # the image has at least this many channels (3 channels: 3*3 = 9-deep products)
ROWS_FROM_HEIGHT = 64       # and at least this many output rows (at 32 and 16 rows it measured no gain)
MOST_OUTPUTS_PER_CHANNEL = 2      # at most this many output channels per input channel (Z, kh*O rows,
                                  # outgrows what R saves: 16->64 @128 measured 1.12)
GRADIENT_ROWS_PER_EXTRA_ROW = 8   # with dL/dw, bands of at least this many rows per extra row:
                                  # an extra row costs twice there (in Z and in G)


def stacked_rows_pay(bands: Bands, out_channels: int, weight_grad: bool = False) -> bool:
    """Trick 10 applies (stride 1, a kernel of two rows or more: one row has nothing to stack) and
    pays: channels, output rows and outputs per channel as measured above, and, with the weight
    gradient, G no larger than R (out_channels <= the image's channels) and bands of
    GRADIENT_ROWS_PER_EXTRA_ROW rows per extra row."""
    c, extra_rows = bands.image_shape[1], bands.kernel[0] - 1
    pays = (tuple(bands.stride) == (1, 1) and extra_rows >= 1 and c >= ROWS_FROM_CHANNELS
            and bands.out_h >= ROWS_FROM_HEIGHT and out_channels <= MOST_OUTPUTS_PER_CHANNEL * c)
    if weight_grad:
        pays = (pays and out_channels <= c
                and extra_rows * GRADIENT_ROWS_PER_EXTRA_ROW <= bands.row_band_rows(out_channels))
    return pays


def rows_major(w):
    """(O, C, kh, kw) weight -> W_rows (kh*O, kw*C), W_rows[(i, o), (j, c)] = w[o, c, i, j]."""
    o, c, kh, kw = w.shape
    return w.transpose(2, 0, 3, 1).reshape(kh * o, kw * c)


def weight_from_rows_major(gw_rows, weight_shape: tuple):
    """(kh*O, kw*C) -> the (O, C, kh, kw) layout of the weight: rows_major turned back."""
    o, c, kh, kw = weight_shape
    return gw_rows.reshape(kh, o, kw, c).transpose(1, 3, 0, 2).copy()


def forward_and_weight_grad_by_rows(image, w, out_grad, padding: tuple, bias=None,
                                    image_sums: bool = False, relu: bool = False, image_mask=None):
    """Stride 1: (conv(image, w) + bias, its dL/dw for out_grad, image's channel sums), by stacked rows.

    The contract of fast_conv.forward_and_weight_grad at stride 1: image
    (N, C, H, W), w (O, C, kh, kw), out_grad None or (N, O, OH, OW), bias None
    or (O,); dL/dw None without out_grad, the sums (C,) None unless image_sums;
    relu and image_mask as there (trick 11). The samples run in shares on the
    cores (trick 7).
    """
    xp = backend.get_array_module(image)
    n, c = image.shape[:2]
    o, _, kh, kw = w.shape
    bands = Bands(image.shape, (kh, kw), (1, 1), padding, image.itemsize)
    wq = bands.width
    row_bands = bands.row_bands(o)
    most = (row_bands[0][1] - row_bands[0][0] + kh - 1) * wq            # the first band is the longest
    w_rows = rows_major(w)                                               # (kh*O, kw*C)
    y = xp.empty((n, o, bands.out_h, bands.out_w), dtype=image.dtype)

    def share(start, stop):        # samples start..stop-1: fills y, returns their (dL/dW_rows, image sums)
        phases = bands.phase_buffer(xp, c, image.dtype)                  # (1, C, rows, Wq)
        flat = phases.reshape(c, -1)                                     # (C, rows*Wq)
        rows_buffer = xp.empty((kw * c, most), dtype=image.dtype)
        z_buffer = xp.empty((kh * o, most), dtype=image.dtype)
        gw_rows = sums = None
        if out_grad is not None:
            g_buffer = xp.zeros((kh * o, most), dtype=image.dtype)       # zero outside each block
            gw_rows = xp.zeros((kh * o, kw * c), dtype=image.dtype)
        if image_sums:
            sums = xp.zeros(c, dtype=image.dtype)                        # (C,)
        mask_buffers = relu_buffers(xp, image_mask)
        for sample in range(start, stop):
            bands.split(relu_passed(image, image_mask, sample, mask_buffers), phases)
            if image_sums:
                sums += flat.sum(axis=1)                                 # padding adds zeros
            for r0, r1 in row_bands:
                r = bands.row_columns(flat, (r0, r1), rows_buffer)       # R: (kw*C, L + (kh-1)*Wq)
                z = xp.matmul(w_rows, r, out=z_buffer[:, :r.shape[1]])   # (kh*O, kw*C) @ R
                out = sum_kernel_rows(z, o, (r1 - r0) * wq, wq)          # (O, L)
                if bias is not None:
                    out += bias.reshape(o, 1)
                if relu:
                    xp.maximum(out, 0, out=out)
                y[sample, :, r0:r1] = out.reshape(o, r1 - r0, wq)[:, :, :bands.out_w]
                if out_grad is not None:
                    g = stacked_out_grad(out_grad[sample], (r0, r1), bands, g_buffer[:, :r.shape[1]])
                    gw_rows += matmul_without_gil(g, r.T)                # (kh*O, ...) @ (..., kw*C)
        return gw_rows, sums

    gw_parts, sum_parts = zip(*over_samples(share, image))
    gw = None if out_grad is None else weight_from_rows_major(in_order_sum(gw_parts), w.shape)
    return y, gw, (in_order_sum(sum_parts) if image_sums else None)


def sum_kernel_rows(z, o: int, length: int, width: int):
    """y[o, p] = sum_i Z[(i, o), p + i*Wq] for p < length, added into Z's first block (a view of it)."""
    out = z[:o, :length]
    for i in range(1, z.shape[0] // o):
        out += z[i * o:(i + 1) * o, i * width:i * width + length]
    return out


def stacked_out_grad(g_sample, band: tuple, bands: Bands, g):
    """G of the band: g[(i, o), q] = g_sample[o, q - i*Wq] on the wide grid, else 0; g (kh*O, L + (kh-1)*Wq).

    g_sample is one sample's output gradient (O, OH, OW); g's buffer is zero where no band
    writes (the junk columns, the first i*Wq columns of block i), and its tail is zeroed here.
    """
    o = g_sample.shape[0]
    r0, r1 = band
    wq, length = bands.width, (band[1] - band[0]) * bands.width
    for i in range(g.shape[0] // o):
        block = g[i * o:(i + 1) * o]
        block[:, i * wq:i * wq + length].reshape(o, r1 - r0, wq)[:, :, :bands.out_w] = g_sample[:, r0:r1]
        block[:, i * wq + length:] = 0                                   # a longer band's rows, before
    return g
