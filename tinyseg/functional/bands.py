"""The geometry of a fast convolution: its stride phases and its bands of output rows.

fast_conv.py's tricks 1-3, 9 and 10 (its docstring tells them) in one class: where
each tap reads the flattened phases, how a sample's output rows split into
bands of about BAND_BYTES of columns, and the copies between an image, its
phases and a band's columns.
"""

from __future__ import annotations

from tinyseg.im2col import output_size

BAND_BYTES = 4 * 2**20      # a band's columns, about: fits the shared cache with room for the rest
MIN_BAND_COLUMNS = 4096     # but at least this many columns, so that Python's per-call cost stays small
ROWS_PER_EXTRA_ROW = 4      # trick 10: a band has at least this many rows per extra row (kh - 1) it computes


class Bands:
    """The geometry of one convolution on its stride phases, and its bands of output rows.

    image (N, C, H, W), kernel (kh, kw), stride (sh, sw), padding (ph, pw).
    Each of the sh*sw phases of the padded image is stored flat, as
    (rows, width) = (Hq + 1, Wq) with Wq = ceil(Wp / sw): one spare zero row
    at the bottom, so the junk windows of the last rows stay inside.
    Output pixel (y, x) is column y * Wq + x of a phase's flat grid; tap (i, j)
    reads its phase at that column plus shift(i, j) = (i // sh) * Wq + j // sw.

    Where the windows tile the image (kernel == stride: 2x2 stride 2, 1x1
    stride 1), tap (i, j) IS phase (i, j), read at shift 0, so a band's
    columns are a view of the phases and need no copy (trick 9).
    """

    def __init__(self, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, itemsize: int):
        n, c, h, w = image_shape
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        self.image_shape, self.kernel, self.stride, self.padding = tuple(image_shape), kernel, stride, padding
        self.itemsize = itemsize                                         # bytes of one number
        self.out_h = output_size(h, kh, sh, ph)                          # OH
        self.out_w = output_size(w, kw, sw, pw)                          # OW
        self.width = -(-(w + 2 * pw) // sw)                              # Wq
        self.rows = -(-(h + 2 * ph) // sh) + 1                           # Hq + 1 spare row
        self.phases = sh * sw
        self.taps = [((i % sh) * sw + j % sw, (i // sh) * self.width + j // sw)
                     for i in range(kh) for j in range(kw)]             # (phase, shift) per tap
        self.depth = c * kh * kw                                         # K
        self.tiles = (kh, kw) == (sh, sw)                                # each pixel in one window
        band_columns = max(MIN_BAND_COLUMNS, BAND_BYTES // (itemsize * self.depth))
        self.band_rows = max(1, min(self.out_h, band_columns // self.width))
        self.bands = [(r, min(r + self.band_rows, self.out_h)) for r in range(0, self.out_h, self.band_rows)]

    def row_band_rows(self, out_channels: int) -> int:
        """Output rows per band of trick 10 (stacked_rows.py, stride 1): its row columns
        (kw*C rows) and stacked products (kh*O rows) span the band's rows and kh - 1 more,
        about BAND_BYTES together, at least MIN_BAND_COLUMNS columns, and at least
        ROWS_PER_EXTRA_ROW rows for each of the kh - 1 (on a wide image the band outgrows
        BAND_BYTES rather than compute mostly extra rows)."""
        (kh, kw), c = self.kernel, self.image_shape[1]
        row_bytes = self.itemsize * (kw * c + kh * out_channels) * self.width
        rows = max(BAND_BYTES // row_bytes, -(-MIN_BAND_COLUMNS // self.width)) - (kh - 1)
        return max(1, min(self.out_h, max(rows, ROWS_PER_EXTRA_ROW * (kh - 1))))

    def row_bands(self, out_channels: int) -> list:
        """Trick 10's bands of output rows: [(r0, r1), ...], each row_band_rows long, the last one shorter."""
        rows = self.row_band_rows(out_channels)
        return [(r, min(r + rows, self.out_h)) for r in range(0, self.out_h, rows)]

    def grid_fits(self, channels: int) -> bool:
        """One sample's whole (channels, OH * Wq) grid of outputs has at most BAND_BYTES."""
        return channels * self.out_h * self.width * self.itemsize <= BAND_BYTES

    def phase_slices(self):
        """For each phase (a, b): (its index, slices into the phase grid, slices into the image).

        phase[a, b][r, q] = padded[r * sh + a, q * sw + b] = image[r * sh + a - ph, q * sw + b - pw]
        """
        n, c, h, w = self.image_shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        found = []
        for a in range(sh):
            for b in range(sw):
                r0, q0 = -(-(ph - a) // sh), -(-(pw - b) // sw)          # first rows/cols inside the image
                y0, x0 = r0 * sh + a - ph, q0 * sw + b - pw
                nr, nq = len(range(y0, h, sh)), len(range(x0, w, sw))
                if nr and nq:
                    found.append((a * sw + b, (slice(r0, r0 + nr), slice(q0, q0 + nq)),
                                  (slice(y0, h, sh), slice(x0, w, sw))))
        return found

    def phase_buffer(self, xp, channels: int, dtype):
        """Zeros for one sample's phases: (phases, C, rows, Wq)."""
        return xp.zeros((self.phases, channels, self.rows, self.width), dtype=dtype)

    def split(self, image, phases) -> None:
        """Copy one (C, H, W) image into its phases (padding and spare rows stay zero)."""
        for p, (rows, cols), (ys, xs) in self.phase_slices():
            phases[p, :, rows, cols] = image[:, ys, xs]

    def merge(self, phases, image) -> None:
        """Copy the image part of one sample's phases back into a (C, H, W) image."""
        for p, (rows, cols), (ys, xs) in self.phase_slices():
            image[:, ys, xs] = phases[p, :, rows, cols]

    def columns(self, flat, band: tuple, buffer):
        """The band's columns (K, L) in (tap, channel) row order, from flat phases (P, C, rows*Wq).

        A view of the phases where the windows tile the image (trick 9), else copied into buffer.
        """
        c = flat.shape[1]
        start, length = band[0] * self.width, (band[1] - band[0]) * self.width
        if self.tiles:                                                    # tap t is phase t, shift 0
            return flat.reshape(self.phases * c, -1)[:, start:start + length]
        cols = buffer[:, :length]
        for t, (p, shift) in enumerate(self.taps):                        # one slice copy per tap
            cols[t * c:(t + 1) * c] = flat[p, :, start + shift:start + shift + length]
        return cols

    def row_columns(self, flat, band: tuple, buffer):
        """Trick 10's row columns R (kw*C, (R + kh - 1) * Wq) of a band, from the flat image (C, rows*Wq).

        R[(j, c), q] = flat[c, start + q + j]: the band's rows and kh - 1 more, shifted by j (stride 1).
        """
        c = flat.shape[0]
        (kh, kw), start = self.kernel, band[0] * self.width
        length = (band[1] - band[0] + kh - 1) * self.width
        rows = buffer[:, :length]
        for j in range(kw):                                               # one slice copy per column j
            rows[j * c:(j + 1) * c] = flat[:, start + j:start + j + length]
        return rows

    def add_columns(self, gcols, band: tuple, flat) -> None:
        """col2im of a band: add each tap's rows of gcols (K, L) onto the flat phases (P, C, rows*Wq)."""
        c = flat.shape[1]
        start, length = band[0] * self.width, gcols.shape[1]
        for t, (p, shift) in enumerate(self.taps):
            flat[p, :, start + shift:start + shift + length] += gcols[t * c:(t + 1) * c]

    def widen(self, gy_sample, band: tuple, buffer):
        """dL/dy of one sample's band, (O, R, OW) -> (O, R * Wq) with zeros in the junk columns.

        Without junk columns (Wq == OW) that is gy_sample's own rows, a view where they lie in order.
        """
        o = gy_sample.shape[0]
        r0, r1 = band
        if self.width == self.out_w:
            return gy_sample[:, r0:r1].reshape(o, -1)
        grid = buffer[:, :(r1 - r0) * self.width]
        grid.reshape(o, r1 - r0, self.width)[:, :, :self.out_w] = gy_sample[:, r0:r1]
        return grid
