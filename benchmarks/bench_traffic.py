"""The bytes the U-Net training step reads and writes outside its products, counted call by call.

    python benchmarks/bench_traffic.py                       # base 16, depth 3, batch 8, 3x128x128, SGD
    python benchmarks/bench_traffic.py --batch-norm --optimizer adam

Two figures that do not depend on the machine (the CPU speed issue asks for them): the bytes the
step writes outside its matrix products, and the passes over activations that makes. Where copying
is slow, these are what the step pays for beside its products.

How it counts: every NumPy array the step touches is a `Counted` array, a subclass of numpy.ndarray
whose hooks (`__array_ufunc__`, `__array_function__`, item access, and the methods that may copy)
add to a tally each time NumPy computes with it, then run the plain NumPy call:

    a ufunc (+, *, maximum, exp; a sum or max along axes)   reads its operands, writes its result
    a copy, concatenation, padding, take, einsum             reads its sources, writes its result
    an assignment into a slice, a[...] = b                   reads b, writes the slice
    a matrix product (matmul, dot, tensordot)                tallied apart: FLOPs, bytes in and out
    np.zeros, ones, full (and their _like forms)             write the new array
    np.empty, a view (reshape without copying, slicing)      move nothing, not counted

An operand's bytes are its elements times their size, axes of stride 0 (a broadcast bias) counted
once. The step runs on one thread (a call cut into samples over threads moves the same bytes).
An activation is a layer's output (convolution, batch norm, ReLU, pooling, transpose convolution,
concatenation) in one forward pass of the textbook network; `layer_output_bytes` sums them, the same
figure for every version of the code, and passes = bytes / activation bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import defaultdict

import numpy as np

PRODUCTS = {"matmul", "dot", "tensordot", "inner", "vdot"}
FILLED = {"empty": 0, "empty_like": 0, "zeros": 1, "zeros_like": 1, "ones": 1, "ones_like": 1,
          "full": 1, "full_like": 1}                   # array makers: 1 where they write every number


# ----------------------------------------------------------- the tally

class Tally:
    """Calls, bytes read and bytes written, by NumPy function; products apart, with their FLOPs."""

    def __init__(self):
        self.depth = 0                  # > 0 inside a counted call: NumPy's own inner calls not counted
        self.active = False             # True inside counting()
        self.reset()

    def reset(self) -> None:
        """Forget what was counted; count from now on."""
        self.calls = defaultdict(int)
        self.read = defaultdict(int)
        self.written = defaultdict(int)
        self.flops = 0

    @contextlib.contextmanager
    def call(self):
        """Around one NumPy call: what NumPy does inside it is not added again."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def add(self, name: str, read: int, written: int, flops: int = 0) -> None:
        """Count one call (not inside another counted call)."""
        if not self.active or self.depth:
            return
        self.calls[name] += 1
        self.read[name] += read
        self.written[name] += written
        self.flops += flops

    def outside_products(self) -> tuple:
        """(bytes read, bytes written) by every call that is not a matrix product."""
        names = [name for name in self.calls if name not in PRODUCTS]
        return sum(self.read[n] for n in names), sum(self.written[n] for n in names)


TALLY = Tally()


def extent(array) -> int:
    """Bytes of `array`'s elements, an axis of stride 0 (broadcast) counted once."""
    if not isinstance(array, np.ndarray):
        return 0
    size = array.itemsize
    for length, stride in zip(array.shape, array.strides):
        size *= length if stride != 0 else 1
    return size


def plain(value):
    """`value` with every Counted array in it (lists and tuples too) seen as a plain ndarray."""
    if isinstance(value, Counted):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def counted(value):
    """`value` with every ndarray in it seen as a Counted array."""
    if isinstance(value, np.ndarray) and not isinstance(value, Counted):
        return value.view(Counted)
    if isinstance(value, (list, tuple)):
        return type(value)(counted(v) for v in value)
    return value


def arrays_in(values) -> list:
    """The ndarrays among `values`, looking one level into lists and tuples."""
    found = []
    for value in values:
        if isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, np.ndarray))
        elif isinstance(value, np.ndarray):
            found.append(value)
    return found


def shares_memory(result, operands: list) -> bool:
    """Whether `result` may be a view of one of the operands (then nothing was written)."""
    return any(np.may_share_memory(result, plain(a)) for a in operands)


def product_flops(name: str, operands: list, result) -> int:
    """Multiply-adds x 2 of a matrix product: the result's size times the length it sums over."""
    a = operands[0]
    if name == "matmul" or a.ndim <= 2:
        summed = a.shape[-1] if a.ndim else 1
    else:                                  # tensordot: sum length^2 = |a| |b| / |result|
        summed = round((a.size * operands[1].size / max(np.size(result), 1)) ** 0.5)
    return 2 * int(np.size(result)) * int(summed)


# ----------------------------------------------------------- the array that counts

class Counted(np.ndarray):
    """An ndarray that tallies the bytes each NumPy call on it reads and writes (module docstring).

    Each hook runs the plain NumPy call on plain views inside TALLY.call(), so a call made inside
    another (np.pad on the arrays it makes) is not counted again.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            kwargs["out"] = plain(out)
        with TALLY.call():
            result = getattr(ufunc, method)(*plain(inputs), **kwargs)
        operands = arrays_in(inputs)
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        flops = product_flops("matmul", operands, result) if ufunc.__name__ == "matmul" else 0
        written = out if out is not None else (result,)
        TALLY.add(name, sum(map(extent, operands)), sum(map(extent, arrays_in(written))), flops)
        if out is None:
            return counted(result)
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func, types, args, kwargs):
        with TALLY.call():
            result = func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        operands = arrays_in(list(args) + list(kwargs.values()))
        name = func.__name__
        if name == "copyto":                            # copyto(destination, source): returns None
            TALLY.add(name, extent(plain(args[1])), extent(operands[0]))
        elif name == "put":                             # put(array, indices, values): returns None
            TALLY.add(name, sum(map(extent, operands[1:])), np.size(args[1]) * operands[0].itemsize)
        elif name in PRODUCTS:
            TALLY.add(name, sum(map(extent, operands)), extent(result), product_flops(name, operands, result))
        elif name in FILLED:                            # zeros_like: written, nothing read
            TALLY.add(name, 0, FILLED[name] * extent(result))
        elif isinstance(result, np.ndarray) and not shares_memory(result, operands):
            TALLY.add(name, sum(map(extent, operands)), extent(result))         # a new array, written
        return counted(result)

    def __getitem__(self, key):
        base = self.view(np.ndarray)
        result = np.ndarray.__getitem__(base, plain(key))
        if isinstance(result, np.ndarray) and not np.may_share_memory(result, base):
            TALLY.add("getitem (a copy)", result.nbytes, result.nbytes)       # fancy indexing
        return counted(result)

    def __setitem__(self, key, value):
        target = np.ndarray.__getitem__(self.view(np.ndarray), plain(key))
        TALLY.add("setitem", extent(value), target.size * target.itemsize)
        np.ndarray.__setitem__(self.view(np.ndarray), plain(key), plain(value))

    def copy(self, order="C"):
        TALLY.add("copy", extent(self), self.nbytes)
        return counted(np.ndarray.copy(self.view(np.ndarray), order))

    def fill(self, value):
        TALLY.add("fill", 0, self.nbytes)
        np.ndarray.fill(self.view(np.ndarray), value)

    def astype(self, dtype, *args, **kwargs):
        return self.maybe_copy("astype", np.ndarray.astype, dtype, *args, **kwargs)

    def reshape(self, *shape, **kwargs):
        return self.maybe_copy("reshape (a copy)", np.ndarray.reshape, *shape, **kwargs)

    def ravel(self, order="C"):
        return self.maybe_copy("ravel (a copy)", np.ndarray.ravel, order)

    def maybe_copy(self, name: str, method, *args, **kwargs):
        """A method that returns a view where it can and a copy where it must: counts the copies."""
        base = self.view(np.ndarray)
        result = method(base, *args, **kwargs)
        if result.size and not np.may_share_memory(result, base):
            TALLY.add(name, extent(self), result.nbytes)
        return counted(result)


# ----------------------------------------------------------- every new array is Counted

MAKERS = ("empty", "zeros", "ones", "full", "array", "asarray", "ascontiguousarray")


def counting_maker(name: str, make):
    """np.<name> giving Counted arrays; counts the numbers np.zeros (ones, full) writes, and the
    copies np.array, np.asarray and np.ascontiguousarray make (not the views they return)."""
    def make_counted(*args, **kwargs):
        with TALLY.call():
            result = make(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        source = plain(args[0]) if args else None
        if name in FILLED:
            TALLY.add(name, 0, FILLED[name] * result.nbytes)
        elif (isinstance(source, np.ndarray) and isinstance(result, np.ndarray)
                and not np.may_share_memory(result, source)):
            TALLY.add(name, extent(source), result.nbytes)                # a copy
        return counted(result)
    return make_counted


@contextlib.contextmanager
def counting():
    """Inside: NumPy's array makers and as_strided give Counted arrays; TALLY counts what they do."""
    saved = {name: getattr(np, name) for name in MAKERS}
    saved_strided = np.lib.stride_tricks.as_strided
    for name in MAKERS:
        setattr(np, name, counting_maker(name, saved[name]))
    np.lib.stride_tricks.as_strided = lambda array, *a, **k: counted(saved_strided(plain(array), *a, **k))
    TALLY.reset()
    TALLY.active = True
    try:
        yield TALLY
    finally:
        TALLY.active = False
        for name, make in saved.items():
            setattr(np, name, make)
        np.lib.stride_tricks.as_strided = saved_strided


# ----------------------------------------------------------- the U-Net step

def layer_output_bytes(batch: int, size: int, base: int, depth: int, num_classes: int,
                     batch_norm: bool, itemsize: int = 4) -> int:
    """Bytes of every layer output of one U-Net forward pass, as the textbook network makes them.

    Per level: two convolutions (each with its ReLU, and batch norm if asked), pooling; coming up:
    the transpose convolution, the concatenation, two convolutions again. Then the bottleneck and
    the 1x1 head (tinyseg/models/unet.py draws it).
    """
    per_convolution = 3 if batch_norm else 2                  # conv, (batch norm,) ReLU
    elements = num_classes * size * size                       # the head
    for level in range(depth):
        channels, side = base * 2**level, size // 2**level
        image = channels * side * side
        elements += 2 * per_convolution * image + image // 4    # encoder, pooling
        elements += image + 2 * image + 2 * per_convolution * image   # up, cat, decoder
    elements += 2 * per_convolution * base * 2**depth * (size // 2**depth) ** 2   # bottleneck
    return elements * batch * itemsize


def count_step(batch: int, size: int, batch_norm: bool, optimizer: str) -> tuple:
    """(Tally of the second training step, activation bytes), U-Net base 16, depth 3, 4 classes."""
    import tinyseg.functional as F
    from tinyseg import optim
    from tinyseg.models import build_model
    from tinyseg.tensor import Tensor

    config = dict(name="unet", in_channels=3, num_classes=4, base_channels=16, depth=3,
                  batch_norm=batch_norm)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, config["num_classes"], (batch, size, size))
    with counting() as tally:
        model = build_model(config)
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = counted(tensor.data)
        step_rule = (optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "sgd"
                     else optim.Adam(model.parameters(), lr=1e-3))
        x = Tensor(counted(images))
        for _ in range(2):                                     # the first one makes the state
            tally.reset()
            step_rule.zero_grad()
            F.cross_entropy(model(x), counted(labels)).backward()
            step_rule.step()
    return tally, layer_output_bytes(batch, size, 16, 3, config["num_classes"], batch_norm)


def report(tally: Tally, activations: int, top: int) -> str:
    """Markdown: the totals, then the calls that write the most outside the products.

    (Not common.format_table: common imports tinyseg, and this file must count the tinyseg of
    --code, which may be another version.)
    """
    mib = 2.0**20
    read, written = tally.outside_products()
    calls = sum(tally.calls[n] for n in tally.calls if n not in PRODUCTS)
    lines = [f"activations (one forward pass, every layer's output): {activations / mib:.1f} MiB",
             f"outside the products: written {written / mib:.1f} MiB ({written / activations:.2f} passes), "
             f"read {read / mib:.1f} MiB ({read / activations:.2f} passes), {calls} calls",
             f"products: {sum(tally.calls[n] for n in PRODUCTS)} calls, {tally.flops / 1e9:.4g} GFLOP, "
             f"operands {sum(tally.read[n] for n in PRODUCTS) / mib:.1f} MiB, "
             f"results {sum(tally.written[n] for n in PRODUCTS) / mib:.1f} MiB",
             "", "| call | calls | written MiB | read MiB | passes written |", "|---|---|---|---|---|"]
    names = sorted((n for n in tally.calls if n not in PRODUCTS), key=lambda n: -tally.written[n])
    for n in names[:top]:
        lines.append(f"| {n} | {tally.calls[n]} | {tally.written[n] / mib:.1f} | {tally.read[n] / mib:.1f} "
                     f"| {tally.written[n] / activations:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="the checkout whose tinyseg to count (default: this one)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--top", type=int, default=15, help="how many calls to list")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"      # before tinyseg is imported: one thread runs every call
    sys.path.insert(0, os.path.abspath(args.code))
    tally, activations = count_step(args.batch, args.size, args.batch_norm, args.optimizer)
    import tinyseg
    print(f"U-Net step, batch {args.batch}, 3x{args.size}x{args.size}, "
          f"{'batch norm + ' if args.batch_norm else ''}{args.optimizer}; "
          f"tinyseg from {os.path.dirname(os.path.dirname(tinyseg.__file__))}")
    print(report(tally, activations, args.top))


if __name__ == "__main__":
    main()
