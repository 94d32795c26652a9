"""The array rules a Tensor follows: making arrays, undoing broadcasting, promoting constants.

Three small functions that tensor.py calls in many places, kept apart so
that tensor.py reads as the Tensor and its operations only:

    as_array(data, dtype, device)        numbers and lists -> a NumPy/CuPy array
    unbroadcast(grad, shape)             sum a broadcast gradient back to `shape`
    constant_result_dtype(dtype, c)      the dtype of `tensor (op) c`, as NumPy says
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
