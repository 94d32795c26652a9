"""The autograd Tensor: an n-d array that remembers how it was computed.

    x = Tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()          # y = x0^2 + x1^2
    y.backward()               # dy/dx = 2x
    x.grad                     # array([[2., 4.]], dtype=float32)

Each operation below computes its result (the forward) and defines, right
next to it, `backward(grad)`: given d loss / d result, it returns d loss / d
each input. `autograd.run_backward` calls these in reverse order.

Gradients (`.grad`) are plain NumPy/CuPy arrays shaped like the tensor:
tinyseg does not differentiate through a backward pass.
"""

from __future__ import annotations

import weakref

import numpy as np

from tinyseg import autograd, backend, recording
from tinyseg.arrays import (as_array, check_broadcastable, check_constant_device, check_matmul_shapes,
                            check_operands_agree, constant_result_dtype, unbroadcast)


class Tensor:
    """An n-d array on "cpu" (NumPy) or "cuda" (CuPy) with reverse-mode autograd."""

    # `array + tensor`: tell NumPy not to handle the operator itself, so that
    # Python falls back to Tensor.__radd__ and the result stays a Tensor.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad needs a floating-point tensor, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None           # d loss / d self, filled in by backward()
        self.node = None           # the recorded operation that made it (autograd.Node); None: a leaf

    @staticmethod
    def from_op(data, parents, backward_fn, op: str, **attributes) -> "Tensor":
        """The result of an operation: records it in the graph (a Node) if any parent needs grad.

        attributes: the operator's settings (stride=..., axis=...), handed only
        to a recording that is on (recording.py); the graph does not keep them.
        """
        out = Tensor(data)
        if autograd.is_grad_enabled() and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out.node = autograd.Node(parents, backward_fn, op, out.shape)
        if recording.is_recording():
            recording.report_operation(op, out, parents, attributes)
        return out

    # ----------------------------------------------------------- basic facts
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def xp(self):
        """numpy or cupy: the array module this tensor's data lives in."""
        return backend.get_array_module(self.data)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = (f", op={self.node.op}" if self.node is not None
                else ", requires_grad=True" if self.requires_grad else "")
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device}{grad})"

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (copies from the GPU if needed)."""
        return np.array(backend.to_numpy(self.data))

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    # ----------------------------------------------------------- autograd
    def backward(self, grad=None) -> None:
        """Add d self / d leaf into each leaf's .grad; grad: 1 for a scalar, else shaped like self."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, got shape "
                                   f"{self.shape}; pass grad= an array of that shape")
            grad = self.xp.ones(self.data.shape, dtype=self.dtype)
        else:
            grad = as_array(grad.data if isinstance(grad, Tensor) else grad, self.dtype, self.device)
            if grad.shape != self.data.shape:
                raise ValueError(f"grad has shape {tuple(grad.shape)}, expected {self.shape}")
        autograd.run_backward(self, grad)

    def detach(self) -> "Tensor":
        """The same data, cut off from the graph."""
        return Tensor(self.data)

    def retain_grad(self) -> "Tensor":
        """Keep .grad on this intermediate tensor after backward() (a leaf always keeps it)."""
        if self.node is not None:
            self.node.retained = weakref.ref(self)    # weak: the graph keeps no result alive
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------- devices and dtypes
    def to(self, device: str) -> "Tensor":
        """This tensor on `device`; the gradient flows back to the original device."""
        if device == self.device:
            return self
        source = self.device

        def backward(grad):
            return (backend.to_device(grad, source),)

        return Tensor.from_op(backend.to_device(self.data, device), (self,), backward, "to",
                              device=device)

    def astype(self, dtype) -> "Tensor":
        """Cast to `dtype` (e.g. np.float64 for gradient checks)."""
        source = self.dtype

        def backward(grad):
            return (grad.astype(source),)

        return Tensor.from_op(self.data.astype(dtype), (self,), backward, "astype", dtype=dtype)

    def _other(self, other, op: str) -> "Tensor":
        """The other operand as a Tensor on our device and of our dtype, or a clear error.

        A tensor must already agree: tinyseg never casts a tensor that may carry
        a gradient behind your back. A number or array becomes a constant.
        """
        if not isinstance(other, Tensor):
            check_constant_device(op, self.device, other)
            return Tensor(self.xp.asarray(other, dtype=self.dtype))
        check_operands_agree(op, self, other)
        return other

    def _operands(self, other, op: str) -> tuple:
        """(a, b): self and the other operand as Tensors of one dtype, shapes broadcastable.

        A constant (a Python number, a NumPy scalar or array) follows NumPy's
        promotion rules, so nothing is silently truncated:

            float32 tensor * 0.5        -> float32   (a Python float adapts to the tensor)
            int64 tensor   * 0.5        -> float64   (as int64_array * 0.5 in NumPy)
            int64 tensor   * 2          -> int64
            float32 tensor * int array  -> float32   (the array is cast "same kind")
        """
        if isinstance(other, Tensor):
            other = self._other(other, op)
            a = self
        else:
            dtype = constant_result_dtype(self.dtype, other)
            # an int tensor meeting 0.5 is cast first: int tensors carry no gradient to lose
            a = self if dtype == self.dtype else self.astype(dtype)
            other = a._other(other, op)
        check_broadcastable(op, a.shape, other.shape)
        return a, other

    # ----------------------------------------------------------- elementwise arithmetic
    def __add__(self, other) -> "Tensor":
        a, b = self._operands(other, "add")
        a_shape, b_shape = a.shape, b.shape          # saved: the shapes only, no array

        def backward(grad):  # d(a+b)/da = 1, d(a+b)/db = 1
            return unbroadcast(grad, a_shape), unbroadcast(grad, b_shape)

        return Tensor.from_op(a.data + b.data, (a, b), backward, "add")

    def __sub__(self, other) -> "Tensor":
        a, b = self._operands(other, "sub")
        a_shape, b_shape = a.shape, b.shape          # saved: the shapes only, no array

        def backward(grad):  # d(a-b)/da = 1, d(a-b)/db = -1
            return unbroadcast(grad, a_shape), unbroadcast(-grad, b_shape)

        return Tensor.from_op(a.data - b.data, (a, b), backward, "sub")

    def __mul__(self, other) -> "Tensor":
        a, b = self._operands(other, "mul")

        def backward(grad):  # d(ab)/da = b, d(ab)/db = a
            return unbroadcast(grad * b.data, a.shape), unbroadcast(grad * a.data, b.shape)

        return Tensor.from_op(a.data * b.data, (a, b), backward, "mul")

    def __truediv__(self, other) -> "Tensor":
        a, b = self._operands(other, "div")       # int / int is a float, as in NumPy: 7 / 2 = 3.5

        def backward(grad):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            return (unbroadcast(grad / b.data, a.shape),
                    unbroadcast(-grad * a.data / (b.data * b.data), b.shape))

        return Tensor.from_op(a.data / b.data, (a, b), backward, "div")

    # `2 - x` calls x.__rsub__(2): make both operands, then apply the operator the other way round.
    def __radd__(self, other) -> "Tensor":
        a, b = self._operands(other, "add")
        return b + a

    def __rsub__(self, other) -> "Tensor":
        a, b = self._operands(other, "sub")
        return b - a

    def __rmul__(self, other) -> "Tensor":
        a, b = self._operands(other, "mul")
        return b * a

    def __rtruediv__(self, other) -> "Tensor":
        a, b = self._operands(other, "div")
        return b / a

    # ----------------------------------------------------------- comparisons
    # Elementwise, like NumPy: `x > 0` is a bool Tensor (no gradient flows through a
    # comparison). The operands are promoted as in arithmetic, so an int tensor compared
    # with 0.5 is compared with 0.5, not with a truncated 0.
    def _compare(self, other, op: str, compare) -> "Tensor":
        a, b = self._operands(other, op)
        return Tensor(compare(a.data, b.data))

    def __lt__(self, other) -> "Tensor":
        return self._compare(other, "lt", lambda a, b: a < b)

    def __le__(self, other) -> "Tensor":
        return self._compare(other, "le", lambda a, b: a <= b)

    def __gt__(self, other) -> "Tensor":
        return self._compare(other, "gt", lambda a, b: a > b)

    def __ge__(self, other) -> "Tensor":
        return self._compare(other, "ge", lambda a, b: a >= b)

    def __eq__(self, other) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "eq", lambda a, b: a == b)

    def __ne__(self, other) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "ne", lambda a, b: a != b)

    __hash__ = object.__hash__    # tensors stay usable as dict keys and in sets, by identity

    def __bool__(self) -> bool:
        """`if t:` needs a single element, as in NumPy; a bigger tensor is ambiguous."""
        if self.size != 1:
            raise ValueError(f"the truth value of a Tensor of shape {self.shape} is ambiguous; "
                             "use t.data.any() or t.data.all()")
        return bool(self.item())

    def __neg__(self) -> "Tensor":
        def backward(grad):
            return (-grad,)

        return Tensor.from_op(-self.data, (self,), backward, "neg")

    def __pow__(self, exponent) -> "Tensor":
        if isinstance(exponent, Tensor) or not np.isscalar(exponent):
            raise TypeError(f"pow: the exponent must be a Python number, got {type(exponent).__name__}")
        x = self

        def backward(grad):  # d(x^p)/dx = p x^(p-1)  (and 0 for p = 0, even at x = 0)
            if exponent == 0:
                return (self.xp.zeros_like(grad),)
            return (grad * exponent * x.data ** (exponent - 1),)

        return Tensor.from_op(x.data ** exponent, (x,), backward, "pow", exponent=exponent)

    def exp(self) -> "Tensor":
        out_data = self.xp.exp(self.data)

        def backward(grad):  # d(e^x)/dx = e^x
            return (grad * out_data,)

        return Tensor.from_op(out_data, (self,), backward, "exp")

    def log(self) -> "Tensor":
        x = self

        def backward(grad):  # d(log x)/dx = 1/x
            return (grad / x.data,)

        return Tensor.from_op(self.xp.log(x.data), (x,), backward, "log")

    def relu(self) -> "Tensor":
        out_data = self.xp.maximum(self.data, 0)

        def backward(grad):  # 1 where x > 0, else 0
            return (grad * (out_data > 0),)

        return Tensor.from_op(out_data, (self,), backward, "relu")

    # ----------------------------------------------------------- matrix product
    def __matmul__(self, other) -> "Tensor":
        other = self._other(other, "matmul")
        a, b = self, other
        check_matmul_shapes(a.shape, b.shape)             # (..., n, k) @ (..., k, m)

        def backward(grad):  # C = AB: dA = dC B^T, dB = A^T dC
            grad_a = grad @ b.data.swapaxes(-1, -2)
            grad_b = a.data.swapaxes(-1, -2) @ grad
            return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)

        return Tensor.from_op(a.data @ b.data, (a, b), backward, "matmul")

    # ----------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        xp, shape = self.xp, self.shape              # saved: the shape only, no array

        def backward(grad):  # every summed element gets the same gradient
            if not keepdims and axis is not None:
                grad = xp.expand_dims(grad, axis)
            elif not keepdims:
                grad = grad.reshape((1,) * len(shape))
            return (xp.broadcast_to(grad, shape),)

        return Tensor.from_op(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward, "sum",
                              axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        total = self.sum(axis=axis, keepdims=keepdims)
        return total / (self.size // max(1, total.size))  # size of what was summed

    def argmax(self, axis=None) -> "Tensor":
        """Indices of the largest values (no gradient): the predicted class."""
        return Tensor(self.data.argmax(axis=axis))

    # ----------------------------------------------------------- shapes
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out_data = self.data.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape shape {self.shape} "
                             f"({self.size} elements) into {shape}") from None
        in_shape = self.shape                        # saved: the shape only, no array

        def backward(grad):
            return (grad.reshape(in_shape),)

        return Tensor.from_op(out_data, (self,), backward, "reshape", shape=out_data.shape)

    def transpose(self, *axes) -> "Tensor":
        """Permute axes (all of them, like NumPy; no axes reverses them)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = tuple(a % self.ndim for a in axes) or tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(axes))

        def backward(grad):  # undo the permutation
            return (grad.transpose(inverse),)

        return Tensor.from_op(self.data.transpose(axes), (self,), backward, "transpose", axes=axes)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __getitem__(self, index) -> "Tensor":
        """Basic indexing and slicing (ints, slices, None, ...); e.g. cropping."""
        parts = index if isinstance(index, tuple) else (index,)
        for part in parts:
            if not (part is None or part is Ellipsis or isinstance(part, (int, slice, np.integer))):
                raise TypeError(f"indexing: only ints, slices, None and ... are supported, "
                                f"got {type(part).__name__}")
        xp, shape = self.xp, self.shape              # saved: the shape only, no array

        def backward(grad):  # the gradient lands where the elements came from
            full = xp.zeros(shape, dtype=grad.dtype)
            full[index] = grad
            return (full,)

        return Tensor.from_op(self.data[index], (self,), backward, "getitem", index=index)

