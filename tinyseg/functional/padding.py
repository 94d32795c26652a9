"""Constant padding of the last axes, as torch.nn.functional.pad does it."""

from __future__ import annotations

from tinyseg.functional.validate import check_tensor
from tinyseg.tensor import Tensor


def pad(x: Tensor, pad: tuple, value: float = 0.0) -> Tensor:
    """Pad the last len(pad) // 2 axes; `pad` lists (before, after) from the LAST axis back.

    For an (N, C, H, W) image, pad=(left, right, top, bottom). The U-Net pads
    images whose size is not a multiple of 2**depth, then crops the result.
    Saved for backward: no array, only the slices of the original region.
    """
    op = "pad"
    check_tensor(x, "input", op)
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(int(p) != p or p < 0 for p in pad):
        raise ValueError(f"{op}: pad must be pairs of non-negative ints for at most {x.ndim} "
                         f"axes, got {tuple(pad)} for input shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):                      # pad[0:2] is the last axis
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    out = x.xp.pad(x.data, widths, mode="constant", constant_values=value)
    crop = tuple(slice(before, before + size) for (before, _), size in zip(widths, x.shape))

    def backward(grad):  # the padding was constant: only the original region has gradient
        return (grad[crop],)

    return Tensor.from_op(out, (x,), backward, op, pad=tuple(int(p) for p in pad), value=value)
