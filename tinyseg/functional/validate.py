"""Argument checks shared by the operators.

Each check raises a ValueError or TypeError that names the operator, the
argument and the shapes, so a mistake is reported where it was made instead
of as a NumPy broadcasting error three calls deeper.
"""

from __future__ import annotations

import numbers

from tinyseg.tensor import Tensor


def pair(value, name: str, op: str) -> tuple:
    """An int or an (h, w) pair of ints -> (h, w)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def positive_pair(value, name: str, op: str) -> tuple:
    values = pair(value, name, op)
    if min(values) < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value!r}")
    return values


def non_negative_pair(value, name: str, op: str) -> tuple:
    values = pair(value, name, op)
    if min(values) < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value!r}")
    return values


def check_tensor(x, name: str, op: str, ndim: int | None = None, layout: str = "") -> None:
    """x must be a floating-point Tensor, with `ndim` axes if given."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a tinyseg.Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-d {layout}, got shape {x.shape}")


def check_same_device_and_dtype(op: str, **tensors) -> None:
    """All given tensors (None is skipped) live on one device with one dtype."""
    named = [(name, t) for name, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(f"{op}: {first_name} is on {first.device} but {name} is on "
                             f"{t.device}; move one with .to(device)")
        if t.dtype != first.dtype:
            raise TypeError(f"{op}: {first_name} has dtype {first.dtype} but {name} has dtype "
                            f"{t.dtype}; cast one with .astype()")
