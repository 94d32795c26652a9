"""Max pooling, built on the same window view as im2col.

Each output pixel is the largest value in its kh x kw window:

    y[n, c, oy, ox] = max over (i, j) of padded[n, c, oy * sh + i, ox * sw + j]

im2col's window view (N, C, kh, kw, OH, OW) already holds, for each tap
(i, j), an (N, C, OH, OW) strided slice of the image. Rather than copy all
windows into columns and take a max along one axis, we keep a running
elementwise maximum over the kh*kw tap slices: the same answer, read straight
from the image, with no column buffer at all.

Backward: the gradient of a max goes to the element that was the max. When a
window holds the maximum more than once (a tie), PyTorch gives it all to the
*first* one in row-major order (tap (0, 0), (0, 1), ...); so do we. The
gradient of tap (i, j) is gy where that tap won its window and 0 elsewhere;
col2im's loop over taps puts it back onto the image through the same window
view, adding where windows overlap (stride < kernel).

This is already the textbook form, so it has no second one beside it: the
max of each window, one tap at a time, with im2col's view and col2im's tap
loop (DeZero's pooling_simple takes the same max over copied columns). The
tap loops run on each share of the batch's samples at once, one share per
core (sample_threads.over_samples), and inside a share one sample at a time,
so that the sample stays in the core's cache over its kh*kw taps: the numbers
do not change, only which core computes them and when (one core's copy
bandwidth is about half of two's on the machines measured,
benchmarks/results/kernels.md). Input samples under 512 KiB stay on one core:
there the hand-over to the second one costs more than it saves.
"""

from __future__ import annotations

from tinyseg.functional.sample_threads import over_samples
from tinyseg.functional.validate import check_tensor, non_negative_pair, positive_pair
from tinyseg.im2col import pad_image, padded_zeros, window_view
from tinyseg.tensor import Tensor


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling of an (N, C, H, W) batch; stride defaults to kernel_size.

    Padding pads with -inf (it never wins) and may be at most half the kernel,
    as in PyTorch, so that every window holds at least one real pixel.
    Saved for backward: the input x (N, C, H, W) (a -inf-padded copy
    (N, C, H + 2ph, W + 2pw) when padding > 0), through its window view, and the
    output y (N, C, OH, OW); no argmax indices: backward finds each window's max again.
    """
    op = "max_pool2d"
    check_tensor(x, "input", op, 4, "(N, C, H, W)")
    kernel = positive_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else positive_pair(stride, "stride", op)
    padding = non_negative_pair(padding, "padding", op)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size {kernel}")
    n, c, h, w = x.shape
    if h + 2 * padding[0] < kernel[0] or w + 2 * padding[1] < kernel[1]:
        raise ValueError(f"{op}: kernel_size {kernel} is larger than the padded input "
                         f"({h + 2 * padding[0]}, {w + 2 * padding[1]}) (input shape {x.shape})")
    xp = x.xp
    kh, kw = kernel

    taps = [(i, j) for i in range(kh) for j in range(kw)]  # row-major, as PyTorch scans
    overlapping = stride[0] < kh or stride[1] < kw
    windows = window_view(pad_image(x.data, padding, value=-xp.inf), kernel, stride)
    y = xp.empty(windows.shape[:2] + windows.shape[4:], dtype=x.dtype)     # (N, C, OH, OW)

    def forward_share(start, stop):                          # samples start..stop-1, one at a time
        for sample in range(start, stop):                    # (its image stays in cache over the taps)
            xp.copyto(y[sample], windows[sample, :, 0, 0])
            for i, j in taps[1:]:
                xp.maximum(y[sample], windows[sample, :, i, j], out=y[sample])   # running max over the taps

    over_samples(forward_share, x.data, passes_only=True)       # cut by the input's samples

    def backward(gy):                                        # gy: (N, C, OH, OW)
        # col2im's tap loop, writing each window's gradient straight onto the image
        padded = padded_zeros(xp, x.shape, padding, gy.dtype)     # (N, C, Hp, Wp)
        targets = window_view(padded, kernel, stride, y.shape[2:], writeable=True)

        def backward_share(start, stop):                     # samples start..stop-1, one at a time
            unclaimed = xp.empty(y.shape[1:], dtype=bool)    # window's max not yet found
            first_max = xp.empty(y.shape[1:], dtype=bool)
            for sample in range(start, stop):
                part, gy_part, y_part = windows[sample], gy[sample], y[sample]
                unclaimed.fill(True)
                for i, j in taps:
                    xp.equal(part[:, i, j], y_part, out=first_max)   # (C, OH, OW) bool
                    first_max &= unclaimed                   # only the first one wins
                    unclaimed ^= first_max
                    if overlapping:                          # a pixel may win in several windows
                        targets[sample, :, i, j] += gy_part * first_max
                    else:                                    # each pixel is in one window only
                        xp.multiply(gy_part, first_max, out=targets[sample, :, i, j])

        over_samples(backward_share, x.data, passes_only=True)
        ph, pw = padding
        if ph or pw:
            padded = padded[:, :, ph:ph + h, pw:pw + w]      # drop the padding
        return (padded,)                                     # (N, C, H, W)

    return Tensor.from_op(y, (x,), backward, op, kernel_size=kernel, stride=stride,
                          padding=padding)
