"""Joining tensors: `cat`, the U-Net's skip connection (`tinyseg.cat`, as torch.cat).

    cat([a, b], axis=1)      a (N, 2, H, W), b (N, 3, H, W) -> (N, 5, H, W)

The forward puts the pieces side by side along `axis`; every element of the
result came from exactly one piece, so the backward cuts the gradient back
at the same boundaries and hands each piece its own slice.
"""

from __future__ import annotations

import numpy as np

from tinyseg.functional.sample_threads import over_samples
from tinyseg.functional.validate import check_same_device_and_dtype
from tinyseg.tensor import Tensor


def cat(tensors, axis: int = 0) -> Tensor:
    """Join tensors along `axis` (U-Net's skip connections join channels, axis=1).

    All must be Tensors on one device with one dtype, of equal shapes except
    along `axis`. Backward cuts the gradient back into the pieces' sizes along `axis`.
    Saved for backward: only the boundaries (the pieces' sizes along axis), no array.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    first = tensors[0]
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat: tensors[{i}] must be a Tensor, got {type(t).__name__}")
        check_same_device_and_dtype("cat", **{"tensors[0]": first, f"tensors[{i}]": t})
        if t.ndim != first.ndim or any(
            a != b for k, (a, b) in enumerate(zip(t.shape, first.shape)) if k != axis % first.ndim
        ):
            raise ValueError(f"cat: tensors[{i}] has shape {t.shape}, which does not match "
                             f"tensors[0] shape {first.shape} except along axis {axis}")
    xp = first.xp
    sizes = [t.shape[axis] for t in tensors]
    boundaries = np.cumsum(sizes)[:-1].tolist()

    def backward(grad):                       # (..., sum(sizes), ...) -> one slice per piece
        return tuple(xp.split(grad, boundaries, axis=axis))

    if axis % first.ndim == 0 or first.ndim < 2:
        data = xp.concatenate([t.data for t in tensors], axis=axis)
    else:
        data = concatenate_by_samples(xp, [t.data for t in tensors], axis % first.ndim)
    return Tensor.from_op(data, tensors, backward, "cat", axis=axis)


def concatenate_by_samples(xp, arrays: list, axis: int):
    """xp.concatenate(arrays, axis) for an axis after the batch's, the samples' copies cut over the cores.

    One core copies at about half the bandwidth two reach on the machines
    measured (benchmarks/results/kernels.md), so each share of the samples
    (sample_threads.over_samples) copies its own rows of every piece.
    """
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = xp.empty(shape, dtype=arrays[0].dtype)
    bounds = np.cumsum([0] + [a.shape[axis] for a in arrays]).tolist()
    at = (slice(None),) * axis

    def share(start, stop):
        for piece, lo, hi in zip(arrays, bounds, bounds[1:]):
            out[(slice(start, stop),) + at[1:] + (slice(lo, hi),)] = piece[start:stop]

    over_samples(share, out)
    return out
