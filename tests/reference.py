"""Direct-loop float64 references: every operator written the obvious way.

Nested Python loops over every index (n, o, y, x, c, i, j), no im2col, no
strided views, no broadcasting tricks: slow, and easy to check by eye. The fast
operators in tinyseg are tested against these on small inputs.

Arguments are plain NumPy arrays; stride, padding and kernel are (h, w) pairs.
"""

from __future__ import annotations

import math

import numpy as np


def f64(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


# ----------------------------------------------------------------- windows
def im2col(x, kernel, stride, padding) -> np.ndarray:
    """cols[(c*kh + i)*kw + j, (n*OH + y)*OW + x] = x[n, c, y*sh + i - ph, x*sw + j - pw] (0 in the padding)."""
    x = f64(x)
    n_, c_, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = np.zeros((c_ * kh * kw, n_ * oh * ow))
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for x_ in range(ow):
                            iy, ix = y * sh + i - ph, x_ * sw + j - pw
                            if 0 <= iy < h and 0 <= ix < w:
                                cols[(c * kh + i) * kw + j, (n * oh + y) * ow + x_] = x[n, c, iy, ix]
    return cols


def col2im(cols, image_shape, kernel, stride, padding) -> np.ndarray:
    """Each column entry added back onto the pixel it was copied from (padding dropped)."""
    cols = f64(cols)
    n_, c_, h, w = image_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    image = np.zeros(image_shape)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for x_ in range(ow):
                            iy, ix = y * sh + i - ph, x_ * sw + j - pw
                            if 0 <= iy < h and 0 <= ix < w:
                                image[n, c, iy, ix] += cols[(c * kh + i) * kw + j, (n * oh + y) * ow + x_]
    return image


# ----------------------------------------------------------------- convolution
def conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0)) -> np.ndarray:
    """out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, y*sh + i - ph, x*sw + j - pw]."""
    x, w = f64(x), f64(w)
    n_, c_, h, w_ = x.shape
    o_, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
    out = np.zeros((n_, o_, oh, ow))
    for n in range(n_):
        for o in range(o_):
            for y in range(oh):
                for x_ in range(ow):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(c_):
                        for i in range(kh):
                            for j in range(kw):
                                iy, ix = y * sh + i - ph, x_ * sw + j - pw
                                if 0 <= iy < h and 0 <= ix < w_:      # outside: zero padding
                                    total += w[o, c, i, j] * x[n, c, iy, ix]
                    out[n, o, y, x_] = total
    return out


def conv_transpose2d(x, w, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)) -> np.ndarray:
    """The scatter definition: each input pixel paints a kernel-sized patch, `stride` apart.

    Input pixel (y, x) adds x[n, ci, y, x] * w[ci, co, i, j] at canvas position
    (y*sh + i, x*sw + j). The canvas is then cropped by `padding` on every side,
    and output_padding adds extra rows/columns at the bottom/right:

        OH = (H - 1) * sh - 2 * ph + kh + oph
    """
    x, w = f64(x), f64(w)
    n_, ci_, h, w_ = x.shape
    _, co_, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw) = stride, padding, output_padding
    oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (w_ - 1) * sw - 2 * pw + kw + opw
    canvas = np.zeros((n_, co_, (h - 1) * sh + kh + oph, (w_ - 1) * sw + kw + opw))
    for n in range(n_):
        for ci in range(ci_):
            for y in range(h):
                for x_ in range(w_):
                    for co in range(co_):
                        for i in range(kh):
                            for j in range(kw):
                                canvas[n, co, y * sh + i, x_ * sw + j] += x[n, ci, y, x_] * w[ci, co, i, j]
    out = canvas[:, :, ph:ph + oh, pw:pw + ow]
    if bias is not None:
        out = out + f64(bias).reshape(1, co_, 1, 1)
    return out


# ----------------------------------------------------------------- pooling
def max_pool2d(x, kernel, stride=None, padding=(0, 0)):
    """(values, indices): each window's max, and the flat index y * W + x of its FIRST max.

    Taps are scanned row-major; a later tap wins only if strictly larger, so a
    tie goes to the first maximum (PyTorch's rule). Padding positions never win.
    """
    x = f64(x)
    n_, c_, h, w = x.shape
    (kh, kw), (ph, pw) = kernel, padding
    sh, sw = kernel if stride is None else stride
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    values = np.zeros((n_, c_, oh, ow))
    indices = np.zeros((n_, c_, oh, ow), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for y in range(oh):
                for x_ in range(ow):
                    best, best_index = -math.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            iy, ix = y * sh + i - ph, x_ * sw + j - pw
                            if 0 <= iy < h and 0 <= ix < w and (best_index is None or x[n, c, iy, ix] > best):
                                best, best_index = x[n, c, iy, ix], iy * w + ix
                    values[n, c, y, x_], indices[n, c, y, x_] = best, best_index
    return values, indices


def max_pool2d_grad(grad_out, indices, input_shape) -> np.ndarray:
    """d loss / d x: each window's output gradient added onto its first-max pixel."""
    n_, c_, h, w = input_shape
    grad = np.zeros(input_shape)
    for n in range(n_):
        for c in range(c_):
            for y in range(indices.shape[2]):
                for x_ in range(indices.shape[3]):
                    index = indices[n, c, y, x_]
                    grad[n, c, index // w, index % w] += grad_out[n, c, y, x_]
    return grad


# ----------------------------------------------------------------- softmax family
def log_softmax(x, dim: int = 1) -> np.ndarray:
    """log p_k = x_k - log sum_j e^{x_j}, one vector along `dim` at a time (shifted by the max)."""
    x = np.moveaxis(f64(x), dim, -1)
    out = np.zeros_like(x)
    for index in np.ndindex(*x.shape[:-1]):
        scores = x[index]
        m = max(scores)
        log_total = m + math.log(sum(math.exp(s - m) for s in scores))
        out[index] = [s - log_total for s in scores]
    return np.moveaxis(out, -1, dim)


def softmax(x, dim: int = 1) -> np.ndarray:
    """p_k = e^{x_k} / sum_j e^{x_j} along `dim`."""
    return np.exp(log_softmax(x, dim))


def cross_entropy(logits, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Per-sample (or per-pixel) loss w[t] * (-log softmax(x)_t), as PyTorch defines it.

    logits (N, C) or (N, C, H, W), target (N,) or (N, H, W). Targets equal to
    ignore_index count neither in the loss nor in the weights. The mean is the
    weighted mean: sum_i w[t_i] loss_i / sum_i w[t_i].
    """
    return per_pixel_loss(logits, target, lambda log_pt: -log_pt, weight, ignore_index, reduction)


def focal_loss(logits, target, gamma: float, weight=None, ignore_index: int = -100,
               reduction: str = "mean"):
    """Per-pixel focal loss w[t] * -(1 - p_t)^gamma * log p_t (Lin et al. 2017).

    Weights, ignore_index and the weighted mean as in cross_entropy.
    """
    return per_pixel_loss(logits, target, lambda log_pt: -(1.0 - math.exp(log_pt)) ** gamma * log_pt,
                          weight, ignore_index, reduction)


def per_pixel_loss(logits, target, loss_of_log_pt, weight, ignore_index: int, reduction: str):
    """One loop over pixels: w[t] * loss_of_log_pt(log softmax(x)_t), reduced as PyTorch does.

    log softmax(x)_t = x_t - m - log sum_j exp(x_j - m) with m = max_j x_j, in plain math.
    """
    scores_last = np.moveaxis(f64(logits), 1, -1)            # (N, ..., C)
    target = np.asarray(target)
    losses, weights = np.zeros(target.shape), np.zeros(target.shape)
    for index in np.ndindex(*target.shape):
        t = int(target[index])
        if t == ignore_index:
            continue
        scores = [float(s) for s in scores_last[index]]
        m = max(scores)
        log_pt = scores[t] - m - math.log(sum(math.exp(s - m) for s in scores))
        w = 1.0 if weight is None else float(weight[t])
        losses[index] = w * loss_of_log_pt(log_pt)
        weights[index] = w
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / weights.sum() if weights.sum() > 0 else math.nan
