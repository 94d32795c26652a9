"""Trick 4 of fast_conv.py: a stride-1 forward with no columns, a sum over the kernel taps.

Read fast_conv.py first; this is one more way to compute its forward, for
stride 1, where it pays.

Tap (i, j) of a stride-1 convolution reads the padded image shifted by
i rows and j columns. On the wide grid of trick 2 (rows Wq long) that shift is
one offset, shift(i, j) = i * Wq + j, into the flattened image, so each tap's
columns are a VIEW of it, and

    y_grid = sum over taps (i, j) of W[:, :, i, j] (O, C) @ flat[:, shift(i, j) : shift(i, j) + L]

with L = OH * Wq the sample's whole grid. The one padded image stays in cache
and is read kh*kw times; no columns are copied. The BLAS packs each view as it
would have packed the columns, so what is saved is the column copy (kh*kw*C
numbers per pixel), and what is paid is kh*kw - 1 additions of the (O, L)
partial sums: a gain where O <= C, each tap's product is deep enough
(C >= TAP_DEPTH) and one sample's (O, L) sums stay in cache (at most
BAND_BYTES), or where O is small beside C (the 11x11 head of
SlidingWindow.to_fcn(), 4 outputs from 16 channels). Measured layer by layer
in benchmarks/results/kernels.md ("Trick 4 where O <= C").
"""

from __future__ import annotations

from tinyseg import backend
from tinyseg.functional.bands import Bands
from tinyseg.functional.sample_threads import over_samples

FEW_OUTPUTS = 4             # stride-1 forward sums taps when out_channels * FEW_OUTPUTS <= in_channels,
TAP_DEPTH = 32              # or when out_channels <= in_channels, in_channels >= TAP_DEPTH and
                            # one sample's output grid has at most BAND_BYTES


def forward_by_taps_pays(weight_shape: tuple, bands: Bands) -> bool:
    """Trick 4 applies (stride 1) and pays: few outputs, or O <= C with deep taps (C >= TAP_DEPTH)
    and one sample's (O, L) output grid of at most BAND_BYTES."""
    o, c = weight_shape[:2]
    deep = o <= c and c >= TAP_DEPTH and bands.grid_fits(o)
    return tuple(bands.stride) == (1, 1) and (o * FEW_OUTPUTS <= c or deep)


def forward_by_taps(x, w, bands: Bands, bias=None, relu: bool = False):
    """Stride-1 y = conv(x, w) + bias as a sum over the kh*kw taps of (O, C) @ (C, L) products on views.

    y_grid = sum over taps (i, j) of W[:, :, i, j] @ flat[:, shift_ij : shift_ij + L],
    with L = OH * Wq the sample's whole grid; no column buffer. bias (O,) or None;
    relu: max(y, 0) on each sample's grid while it is in cache (fast_conv.py's trick 11).
    """
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    length = bands.out_h * bands.width                                   # L
    y = xp.empty((n, o, bands.out_h, bands.out_w), dtype=x.dtype)
    w_taps = xp.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(kh * kw, o, c)   # tap t: (O, C)

    def share(start, stop):                                              # fills y[start:stop]
        phases = bands.phase_buffer(xp, c, x.dtype)                      # (1, C, rows, Wq)
        flat = phases.reshape(c, -1)                                     # (C, rows*Wq)
        y_grid = xp.empty((o, length), dtype=x.dtype)                    # (O, L)
        product = xp.empty((o, length), dtype=x.dtype)                   # one tap's term
        for sample in range(start, stop):
            bands.split(x[sample], phases)
            for t, (_, shift) in enumerate(bands.taps):
                view = flat[:, shift:shift + length]                     # (C, L), no copy
                if t == 0:
                    xp.matmul(w_taps[0], view, out=y_grid)               # (O, C) @ (C, L)
                else:
                    xp.add(y_grid, xp.matmul(w_taps[t], view, out=product), out=y_grid)
            if bias is not None:
                y_grid += bias.reshape(o, 1)
            if relu:
                xp.maximum(y_grid, 0, out=y_grid)
            y[sample] = y_grid.reshape(o, bands.out_h, bands.width)[:, :, :bands.out_w]

    over_samples(share, x)
    return y
