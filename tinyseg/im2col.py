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

The fast convolution (tinyseg/functional/fast_conv.py) builds these same
columns one cache-sized band at a time, on a "wide" grid whose taps are
contiguous runs of the image; read this file first.
"""

from __future__ import annotations

from tinyseg import backend


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """How many window positions fit along one axis: (size + 2p - k) // s + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def padded_zeros(xp, shape: tuple, padding: tuple, dtype):
    """Zeros for an (N, C, H, W) image plus (ph, pw) of padding on each side."""
    n, c, h, w = shape
    return xp.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dtype=dtype)


def pad_image(x, padding: tuple, value: float = 0.0):
    """Pad the two spatial axes of an (N, C, H, W) array by (ph, pw) on each side."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    xp = backend.get_array_module(x)
    padded = padded_zeros(xp, x.shape, padding, x.dtype)
    if value != 0:
        padded.fill(value)
    n, c, h, w = x.shape
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def window_view(padded, kernel: tuple, stride: tuple, grid: tuple | None = None,
                writeable: bool = False):
    """A (N, C, kh, kw, rows, cols) view of all windows of `padded`; copies nothing.

    view[n, c, i, j, y, x] == padded[n, c, y * sh + i, x * sw + j]
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


def im2col(x, kernel: tuple, stride: tuple, padding: tuple):
    """(N, C, H, W) images -> (C*kh*kw, N*OH*OW) columns, one column per window.

    Column n*OH*OW + y*OW + x is the window of image n at output pixel (y, x).
    """
    windows = window_view(pad_image(x, padding), kernel, stride)
    n, c, kh, kw, oh, ow = windows.shape                    # (N, C, kh, kw, OH, OW)
    windows = windows.transpose(1, 2, 3, 0, 4, 5)            # (C, kh, kw, N, OH, OW), a view
    return windows.reshape(c * kh * kw, n * oh * ow)         # the one copy


def col2im(cols, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple):
    """(C*kh*kw, N*OH*OW) columns -> (N, C, H, W) images, adding overlapping windows.

    This is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    """
    n, c, h, w = image_shape
    kh, kw = kernel
    oh, ow = (output_size(image_shape[2 + a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    windows = cols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)  # (N, C, kh, kw, OH, OW)
    return add_windows(windows, image_shape, kernel, stride, padding)


def add_windows(windows, image_shape: tuple, kernel: tuple, stride: tuple, padding: tuple):
    """Add (N, C, kh, kw, OH, OW) window values back onto (N, C, H, W) images.

    Each value goes to the pixel its window tap came from; pixels shared by
    overlapping windows (stride < kernel) receive the sum.
    """
    xp = backend.get_array_module(windows)
    n, c, h, w = image_shape
    (kh, kw), (ph, pw) = kernel, padding
    padded = padded_zeros(xp, image_shape, padding, windows.dtype)
    targets = window_view(padded, kernel, stride, windows.shape[4:], writeable=True)
    for i in range(kh):          # one strided slice per tap: a loop over
        for j in range(kw):      # kh*kw taps, never over pixels
            targets[:, :, i, j] += windows[:, :, i, j]
    return xp.ascontiguousarray(padded[:, :, ph:ph + h, pw:pw + w])
