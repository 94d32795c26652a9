"""The U-Net's size round trip: pad up to a multiple of 2**depth, then crop the logits back.

A U-Net with depth 3 halves the image three times, so H and W must be
multiples of 8 for the shapes to line up on the way back up. A 37 x 45 image
is padded with zeros at the bottom and right to 40 x 48, runs, and its
logits are cropped back to 37 x 45:

    x (N, C, 37, 45) -> pad_to_multiple(x, 8) -> (N, C, 40, 48) -> ... -> logits (N, K, 40, 48)
                     -> crop_like(logits, x)   -> (N, K, 37, 45)

F.pad and slicing compute the same numbers. These two say *why* they pad
and crop, and that is what an exported graph needs (tinyseg/interop/): an
ONNX file written from a 37 x 45 example must still pad a 64 x 64 image by
0 and a 30 x 30 one by 2. pad_to_multiple records `multiple=8`, not
"3 rows and 3 columns", and crop_like records which tensor's size to take,
so the exporter writes "pad to the next multiple of 8" and "crop to the
input's size", which hold at every size.
"""

from __future__ import annotations

from tinyseg.functional.validate import check_tensor
from tinyseg.tensor import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """(N, C, H, W) -> (N, C, H', W'): zeros at the bottom and right, H' the next multiple of `multiple`.

    H' = H + (-H % multiple): 37 -> 40 and 40 -> 40 for multiple 8. When
    nothing is to be added the result shares x's array (nothing is copied).
    Saved for backward: no array, only the (H, W) of x.
    """
    op = "pad_to_multiple"
    check_tensor(x, "input", op, 4, "(N, C, H, W)")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"{op}: multiple must be an int >= 1, got {multiple!r}")
    h, w = x.shape[2:]
    pad_h, pad_w = -h % multiple, -w % multiple                  # rows and columns to add
    if pad_h or pad_w:
        out = x.xp.pad(x.data, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))   # (N, C, H', W')
    else:
        out = x.data                                             # already a multiple

    def backward(grad):  # the added zeros were constants: keep the original region's gradient
        return (grad[:, :, :h, :w],)

    return Tensor.from_op(out, (x,), backward, op, multiple=multiple)


def crop_like(x: Tensor, reference: Tensor) -> Tensor:
    """x[:, :, :H, :W] with (H, W) the height and width of `reference`: undoes pad_to_multiple.

    x (N, K, H', W') with H' >= H and W' >= W -> (N, K, H, W), a view of x.
    `reference` (N, C, H, W) lends only its size: no gradient flows to it.
    Saved for backward: no array, only x's shape.
    """
    op = "crop_like"
    check_tensor(x, "input", op, 4, "(N, C, H, W)")
    check_tensor(reference, "reference", op, 4, "(N, C, H, W)")
    h, w = reference.shape[2:]
    if h > x.shape[2] or w > x.shape[3]:
        raise ValueError(f"{op}: cannot crop input of shape {x.shape} to the {h} x {w} of "
                         f"reference (shape {reference.shape}): the input is smaller")
    xp, shape = x.xp, x.shape

    def backward(grad):  # the cropped-off rows and columns get no gradient
        if (h, w) == shape[2:]:                                  # nothing was cropped
            return (grad,)
        full = xp.zeros(shape, dtype=grad.dtype)                 # (N, K, H', W')
        full[:, :, :h, :w] = grad
        return (full,)

    return Tensor.from_op(x.data[:, :, :h, :w], (x,), backward, op, reference=reference)
