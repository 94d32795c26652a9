"""im2col and col2im: every sliding window as a column, and back.

The naive way to segment an image is to look at the window around every
pixel and classify it on its own. im2col is that same idea done in bulk:
copy every window into one column of a matrix, then a single matrix multiply
applies the filter to all windows at once.

A tiny example: a 4x4 image (one channel), a 3x3 window, stride 1, no padding.

    image            the 2x2 = 4 window positions (top-left corners a, b, e, f)
    a b c d
    e f g h          window at a: a b c    at b: b c d    at e: e f g   at f: f g h
    i j k l                       e f g          f g h          i j k         j k l
    m n o p                       i j k          j k l          m n o         n o p

im2col lays each window out flat as one column, giving a (3*3) x 4 matrix:

    tap (0,0):   a b e f        <- row = one position inside the window
    tap (0,1):   b c f g
    tap (0,2):   c d g h
    tap (1,0):   e f i j
    ...             ...
    tap (2,2):   k l o p
                 ^ ^ ^ ^
                 one column per output pixel

A 3x3 filter flattened to a row of 9 weights, times this matrix, gives the
4 output pixels in one product: (1 x 9) @ (9 x 4) = (1 x 4). With C input
channels the rows become C*kh*kw; with O filters the weights become O rows:

    out (O, OH*OW) = weight (O, C*kh*kw) @ columns (C*kh*kw, OH*OW)

A batch of N images puts its columns side by side, (C*kh*kw, N*OH*OW), so
one matrix multiply serves the whole batch (many small products, one per
image, are several times slower than one big one).

Notice that each pixel is copied up to kh*kw times (f appears in all four
windows): im2col trades memory (kh*kw times the image) for one fast GEMM.

How the columns are built without a loop over pixels: NumPy can *view* the
padded image as a 6-d array of windows, (N, C, kh, kw, OH, OW), in which
moving one step along OH moves `stride` rows in the image and moving one step
along kh moves one row. No data is copied until that view is reshaped into
the (N, C*kh*kw, OH*OW) matrix, which makes one contiguous copy.

col2im goes the other way: each column entry is added back onto the pixel it
came from. Windows overlap when stride < kernel, so one pixel receives the
sum of every window it was part of; that sum is exactly the gradient of
im2col. The loop runs over the kh*kw taps (never over pixels): tap (i, j)
adds one strided slice of the image at a time.

A speed trick for stride 1, the "wide" grid. Copying a window's row of OW
pixels at a time is slow: OW is short and each copy jumps to a new image row.
With stride 1 we may instead compute the output on a grid OH rows by Wp
(the padded width) columns: output pixel (y, x) for x >= OW is a junk window
that wraps around the right edge into the next row. Then, for a fixed tap
(i, j), the OH*Wp entries are ONE contiguous run of the flattened padded
image, starting at i*Wp + j, which copies (and adds back) about twice as
fast. The junk columns cost (Wp - OW) / OW extra work (2/128 for a 3x3
kernel on a 128-pixel image); conv2d crops them from its output, and feeds
zeros there in backward so they add nothing to the gradient.
"""

from __future__ import annotations

from tinyseg import backend


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """How many window positions fit along one axis: (size + 2p - k) // s + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def grid_shape(image_hw: tuple, kernel: tuple, stride: tuple, padding: tuple, wide: bool) -> tuple:
    """(rows, columns) of window positions: (OH, OW), or (OH, Wp) on the wide grid."""
    oh = output_size(image_hw[0], kernel[0], stride[0], padding[0])
    ow = output_size(image_hw[1], kernel[1], stride[1], padding[1])
    if wide:
        if tuple(stride) != (1, 1):
            raise ValueError(f"the wide grid needs stride (1, 1), got {stride}")
        return oh, image_hw[1] + 2 * padding[1]
    return oh, ow


def padded_zeros(xp, shape: tuple, padding: tuple, wide: bool, dtype):
    """Zeros for an (N, C, H, W) image plus padding (and one spare row on the wide grid,
    so that the last junk windows still read inside the buffer)."""
    n, c, h, w = shape
    spare = 1 if wide else 0
    return xp.zeros((n, c, h + 2 * padding[0] + spare, w + 2 * padding[1]), dtype=dtype)


def pad_image(x, padding: tuple, value: float = 0.0, wide: bool = False):
    """Pad the two spatial axes of an (N, C, H, W) array by (ph, pw) on each side."""
    ph, pw = padding
    if ph == 0 and pw == 0 and not wide:
        return x
    xp = backend.get_array_module(x)
    padded = padded_zeros(xp, x.shape, padding, wide, x.dtype)
    if value != 0:
        padded.fill(value)
    n, c, h, w = x.shape
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def window_view(padded, kernel: tuple, stride: tuple, grid: tuple | None = None,
                writeable: bool = False):
    """A (N, C, kh, kw, rows, cols) view of all windows of `padded`; copies nothing.

    view[n, c, i, j, y, x] == padded[n, c, y * sh + i, x * sw + j]
    (on the wide grid x runs past the row end into the next row, by design).
    `grid` defaults to every window that fits.
    """
    kh, kw = kernel
    sh, sw = stride
    n, c, h, w = padded.shape
    rows, cols = grid if grid is not None else ((h - kh) // sh + 1, (w - kw) // sw + 1)
    s_n, s_c, s_h, s_w = padded.strides
    return backend.as_strided(
        padded,
        shape=(n, c, kh, kw, rows, cols),
        strides=(s_n, s_c, s_h, s_w, s_h * sh, s_w * sw),
        writeable=writeable,
    )


def im2col(x, kernel: tuple, stride: tuple, padding: tuple, wide: bool = False, out=None):
    """(N, C, H, W) images -> (C*kh*kw, N*rows*cols) columns, one column per window.

    Column n*rows*cols + y*cols + x is the window of image n at output pixel (y, x).
    `out`, if given, is a buffer of that shape to fill (saves a fresh allocation).
    """
    grid = grid_shape(x.shape[2:], kernel, stride, padding, wide)
    windows = window_view(pad_image(x, padding, wide=wide), kernel, stride, grid)
    n, c, kh, kw, rows, cols = windows.shape                 # (N, C, kh, kw, rows, cols)
    windows = windows.transpose(1, 2, 3, 0, 4, 5)            # (C, kh, kw, N, rows, cols), a view
    if out is None:
        return windows.reshape(c * kh * kw, n * rows * cols)  # the one copy
    xp = backend.get_array_module(x)
    xp.copyto(out.reshape(windows.shape), windows)          # the one copy, into `out`
    return out


def col2im(cols, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
           wide: bool = False):
    """(C*kh*kw, N*rows*cols) columns -> (N, C, H, W) images, adding overlapping windows.

    This is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    """
    n, c, h, w = image_shape
    kh, kw = kernel
    grid = grid_shape((h, w), kernel, stride, padding, wide)
    windows = cols.reshape((c, kh, kw, n) + grid).transpose(3, 0, 1, 2, 4, 5)  # (N, C, kh, kw, rows, cols)
    return add_windows(windows, image_shape, kernel, stride, padding, wide)


def add_windows(windows, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
                wide: bool = False):
    """Add (N, C, kh, kw, rows, cols) window values back onto (N, C, H, W) images.

    Each value goes to the pixel its window tap came from; pixels shared by
    overlapping windows (stride < kernel) receive the sum.
    """
    xp = backend.get_array_module(windows)
    n, c, h, w = image_shape
    (kh, kw), (ph, pw) = kernel, padding
    grid = grid_shape((h, w), kernel, stride, padding, wide)
    padded = padded_zeros(xp, image_shape, padding, wide, windows.dtype)
    targets = window_view(padded, kernel, stride, grid, writeable=True)
    for i in range(kh):          # one strided slice per tap: a loop over
        for j in range(kw):      # kh*kw taps, never over pixels
            targets[:, :, i, j] += windows[:, :, i, j]
    return padded[:, :, ph:ph + h, pw:pw + w]
