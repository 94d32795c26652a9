"""Gradient checking: compare backward() with finite differences.

For a function f and a small eps, the central difference

    (f(x + eps * d) - f(x - eps * d)) / (2 * eps)

approximates the directional derivative <grad f(x), d> with an error of order
eps^2. In float64 (eps ~ 1e-6) that agrees with a correct backward to about
1e-8; a wrong backward is off by O(1). This is how every operator in tinyseg
is tested.

Outputs that are not scalars are reduced with a random weighting v first,
L(x) = sum(v * f(x)), so one backward pass checks all of f's outputs at once.

Small inputs are checked element by element (d = each unit vector in turn),
which points at the exact element that is wrong. Large inputs are checked
along a few random directions d, so the cost does not grow with the tensor.
"""

from __future__ import annotations

import numpy as np

from tinyseg.autograd import no_grad
from tinyseg.tensor import Tensor


class GradcheckError(AssertionError):
    """backward() disagrees with finite differences."""


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              max_elements: int = 512, directions: int = 3, seed: int = 0) -> bool:
    """Check the gradients of fn(*inputs) w.r.t. every input with requires_grad.

    Inputs that require grad must be float64 tensors. Returns True, or raises
    GradcheckError naming the input, the element (or direction), and the
    analytic and numeric values.
    """
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i, x in checked:
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; finite differences "
                            "need float64 (use .astype(np.float64))")
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    xp = out.xp
    weights = xp.asarray(rng.standard_normal(out.shape))        # v: the random output weighting

    def loss() -> float:                                         # L(x) = sum(v * f(x))
        with no_grad():
            return float((fn(*inputs).data * weights).sum())

    for _, x in checked:
        x.grad = None
    out.backward(weights)
    for i, x in checked:
        analytic = x.grad if x.grad is not None else xp.zeros_like(x.data)
        if x.size <= max_elements:
            check_elements(i, x, analytic, loss, eps, atol, rtol)
        else:
            check_directions(i, x, analytic, loss, eps, atol, rtol, directions, rng)
    return True


def numeric_derivative(x: Tensor, direction, loss, eps: float) -> float:
    """(L(x + eps d) - L(x - eps d)) / (2 eps), moving x's data in place and back."""
    original = x.data.copy()
    x.data += eps * direction
    plus = loss()
    x.data[...] = original - eps * direction
    minus = loss()
    x.data[...] = original
    return (plus - minus) / (2 * eps)


def check_elements(i, x, analytic, loss, eps, atol, rtol) -> None:
    xp = x.xp
    direction = xp.zeros_like(x.data)
    for index in np.ndindex(*x.shape):
        direction[index] = 1.0
        numeric = numeric_derivative(x, direction, loss, eps)
        direction[index] = 0.0
        value = float(analytic[index])
        if abs(value - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) at element {index}: "
                                 f"analytic {value:.10g} vs numeric {numeric:.10g}")


def check_directions(i, x, analytic, loss, eps, atol, rtol, directions, rng) -> None:
    xp = x.xp
    for k in range(directions):
        direction = xp.asarray(rng.standard_normal(x.shape))
        numeric = numeric_derivative(x, direction, loss, eps)
        value = float((analytic * direction).sum())
        if abs(value - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) along random "
                                 f"direction {k}: analytic {value:.10g} vs numeric {numeric:.10g}")
