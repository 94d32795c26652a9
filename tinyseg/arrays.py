"""The array rules a Tensor follows: making arrays, undoing broadcasting, promoting constants.

Small functions that tensor.py calls in many places, kept apart so that
tensor.py reads as the Tensor and its operations only:

    as_array(data, dtype, device)        numbers and lists -> a NumPy/CuPy array
    unbroadcast(grad, shape)             sum a broadcast gradient back to `shape`
    constant_result_dtype(dtype, c)      the dtype of `tensor (op) c`, as NumPy says

and the checks behind its clear errors, each naming the operation and what
it was given: two operands on one device with one dtype
(check_operands_agree, check_constant_device), shapes that broadcast
(check_broadcastable) and shapes a matrix product accepts (check_matmul_shapes).
"""

from __future__ import annotations

import numpy as np

from tinyseg import backend


def as_array(data, dtype, device):
    """Turn `data` (array, number, nested list) into a NumPy/CuPy array."""
    if backend.is_array(data):
        array = data if device is None else backend.to_device(data, device)
        return array if dtype is None else array.astype(dtype, copy=False)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(np.float32)  # Python floats become float32, as in PyTorch
    return backend.to_device(array, device or backend.get_default_device())


def constant_result_dtype(dtype, constant):
    """The dtype NumPy gives `array_of(dtype) (op) constant`.

    A Python number is "weak": it adapts to the array (float32 * 0.5 stays
    float32) unless its kind is wider (int64 * 0.5 is float64). A NumPy array
    or scalar (np.float64(3) included) of the same or a narrower kind is cast
    to the tensor's dtype, as tinyseg always did (float32 stays float32); a
    wider kind (a float array with an int tensor) promotes as NumPy would.
    """
    if isinstance(constant, (bool, int, float, complex)) and not isinstance(constant, np.generic):
        return np.result_type(np.empty(0, dtype=dtype), constant)   # NumPy's rule for numbers
    constant_dtype = constant.dtype if backend.is_array(constant) else np.asarray(constant).dtype
    if np.can_cast(constant_dtype, dtype, casting="same_kind"):
        return np.dtype(dtype)
    return np.result_type(dtype, constant_dtype)


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    If x of shape (3, 1) was broadcast against (2, 3, 4), every x[i, 0] was
    used 2 * 4 times, so its gradient is the sum over those copies.
    """
    while grad.ndim > len(shape):  # leading axes that broadcasting added
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:  # axes stretched from 1
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


# ----------------------------------------------------------------- the checks behind clear errors
def check_operands_agree(op: str, a, b) -> None:
    """ValueError unless the two operands a and b are on one device, TypeError unless of one dtype.

    Nothing is cast or copied to make them agree: a tensor may carry a
    gradient, and a silent cast or device copy would hide where it went.
    (The functional operators name each argument instead:
    functional/validate.py, check_same_device_and_dtype.)
    """
    if a.device != b.device:
        raise ValueError(f"{op}: operands are on different devices: {a.device} and "
                         f"{b.device}; move one with .to(device)")
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operands have different dtypes: {a.dtype} (shape "
                        f"{a.shape}) and {b.dtype} (shape {b.shape}); cast one with .astype()")


def check_constant_device(op: str, device: str, constant) -> None:
    """ValueError if `constant` is an array on another device than `device` (a number is fine)."""
    if backend.is_array(constant) and backend.device_of(constant) != device:
        raise ValueError(f"{op}: operands are on different devices: "
                         f"{device} and {backend.device_of(constant)}")


def check_broadcastable(op: str, shape_a: tuple, shape_b: tuple) -> None:
    """ValueError naming both shapes unless NumPy can broadcast them together."""
    try:
        np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise ValueError(f"{op}: shapes {shape_a} and {shape_b} cannot be "
                         "broadcast together") from None


def check_matmul_shapes(shape_a: tuple, shape_b: tuple) -> None:
    """ValueError unless (..., n, k) @ (..., k, m) fits, with broadcastable batch axes."""
    fits = len(shape_a) >= 2 and len(shape_b) >= 2 and shape_a[-1] == shape_b[-2]
    try:
        np.broadcast_shapes(shape_a[:-2], shape_b[:-2])               # the batch axes
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"matmul: shapes {shape_a} and {shape_b} do not fit "
                         "(need (..., n, k) @ (..., k, m) with broadcastable batch axes)")
