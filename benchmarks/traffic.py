"""Counting the bytes NumPy calls read and write: an ndarray subclass that keeps a tally.

    with counting() as tally:            # inside, NumPy's array makers give Counted arrays
        y = np.ones((8, 16)) * 2          # tally.read["multiply"], tally.written["multiply"]
    tally.outside_products()              # (read, written, written to memory) outside the products

bench_traffic.py counts a U-Net training step with it. Every NumPy array the step touches is a
`Counted` array, a subclass of numpy.ndarray whose hooks (`__array_ufunc__`, `__array_function__`,
item access, and the methods that may copy) add to a tally each time NumPy computes with it, then
run the plain NumPy call:

    a ufunc (+, *, maximum, exp; a sum or max along axes)   reads its operands, writes its result
    a copy, concatenation, padding, take, einsum             reads its sources, writes its result
    an assignment into a slice, a[...] = b                   reads b, writes the slice
    a matrix product (matmul, dot, tensordot)                tallied apart: FLOPs, bytes in and out
    np.zeros, ones, full (and their _like forms)             write the new array
    np.empty, a view (reshape without copying, slicing)      move nothing, not counted

An operand's bytes are its elements times their size, axes of stride 0 (a broadcast bias) counted
once. Writes are split by where they land: into an array of at most BLOCK_BYTES (4 MiB, a fast
kernel's band of columns, written and read back while it stays in a cache) or into a region of a
larger one written again while it is still among the last BLOCK_BYTES written (a sample's passes,
one after the other), or else into memory, an activation-sized array on its way there: the
bandwidth-poor machine pays for that last kind (a simple model of a 4 MiB cache, not a measurement).
The tally is one per process and not thread-safe: count on one thread.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict, defaultdict

import numpy as np

PRODUCTS = {"matmul", "dot", "tensordot", "inner", "vdot"}
BLOCK_BYTES = 4 * 2**20   # writes into an array this size or smaller stay in a cache (bands.BAND_BYTES)
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
        self.written_to_memory = defaultdict(int)        # of written: to memory (Tally.to_memory)
        self.recent = OrderedDict()                  # (low, high) address of regions lately written
        self.places = defaultdict(lambda: [0, 0, 0])   # (call, tinyseg function) -> [calls, written, to memory]
        self.flops = 0

    @contextlib.contextmanager
    def call(self):
        """Around one NumPy call: what NumPy does inside it is not added again."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def add(self, name: str, read: int, written: int, into, flops: int = 0) -> None:
        """Count one call (not inside another counted call) that wrote `written` bytes into `into`
        (an array, or none: a sum to a number)."""
        if not self.active or self.depth:
            return
        self.calls[name] += 1
        self.read[name] += read
        self.written[name] += written
        self.flops += flops
        to_memory = self.to_memory(into, written)
        self.written_to_memory[name] += to_memory
        place = self.places[(name, calling_function())]
        place[0] += 1
        place[1] += written
        place[2] += to_memory

    def to_memory(self, into, written: int) -> int:
        """The bytes of a write that go to memory: 0 into a small array (a block in cache) or into a
        region written lately (the last BLOCK_BYTES written: a sample's passes, one after the other);
        else all of them, and the region joins the recent ones."""
        arrays = arrays_in([into])
        if not arrays or whole_array(arrays[0]).nbytes <= BLOCK_BYTES:
            return 0
        low, high = byte_bounds(arrays[0])
        if any(start <= low and high <= end for start, end in self.recent):
            return 0
        self.recent[(low, high)] = high - low
        while sum(self.recent.values()) > BLOCK_BYTES:      # a region larger than that never stays
            self.recent.popitem(last=False)
        return written

    def outside_products(self) -> tuple:
        """(bytes read, bytes written, of those the bytes to memory) outside the products."""
        names = [name for name in self.calls if name not in PRODUCTS]
        tallies = (self.read, self.written, self.written_to_memory)
        return tuple(sum(counts[n] for n in names) for counts in tallies)


TALLY = Tally()


def calling_function() -> str:
    """'functional/bands.py:Bands.columns', the tinyseg function nearest the NumPy call on the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if f"{os.sep}tinyseg{os.sep}" in path:
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)   # Python 3.11+: Class.method
            return f"{path.rsplit(os.sep + 'tinyseg' + os.sep, 1)[1]}:{name}"
        frame = frame.f_back
    return "(outside tinyseg)"


def whole_array(array):
    """The array that owns `array`'s memory (a slice or a reshape is a view of it). Not
    tinyseg.complexity's storage(): a Counted view's owner is a plain ndarray, and this file
    imports no tinyseg (bench_traffic.py counts whichever version --code names)."""
    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    return array


def byte_bounds(array) -> tuple:
    """(first, one past the last) byte address of `array`'s elements."""
    bounds = getattr(getattr(np.lib, "array_utils", None), "byte_bounds", None) or np.byte_bounds
    return bounds(array)


def same_view(a, b) -> bool:
    """Whether a and b are the same numbers in the same memory (assigning one to the other moves nothing)."""
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype and byte_bounds(a) == byte_bounds(b))


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
        written = arrays_in(out if out is not None else (result,))
        TALLY.add(name, sum(map(extent, operands)), sum(map(extent, written)), written[:1], flops)
        if out is None:
            return counted(result)
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func, types, args, kwargs):
        with TALLY.call():
            result = func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        operands = arrays_in(list(args) + list(kwargs.values()))
        name = func.__name__
        if name == "copyto":                            # copyto(destination, source): returns None
            TALLY.add(name, extent(plain(args[1])), extent(operands[0]), operands[0])
        elif name == "put":                             # put(array, indices, values): returns None
            written = np.size(args[1]) * operands[0].itemsize
            TALLY.add(name, sum(map(extent, operands[1:])), written, operands[0])
        elif name in PRODUCTS:
            flops = product_flops(name, operands, result)
            TALLY.add(name, sum(map(extent, operands)), extent(result), result, flops)
        elif name in FILLED:                            # zeros_like: written, nothing read
            TALLY.add(name, 0, FILLED[name] * extent(result), result)
        elif isinstance(result, np.ndarray) and not shares_memory(result, operands):
            TALLY.add(name, sum(map(extent, operands)), extent(result), result)   # a new array, written
        return counted(result)

    def __getitem__(self, key):
        base = self.view(np.ndarray)
        result = np.ndarray.__getitem__(base, plain(key))
        if isinstance(result, np.ndarray) and not np.may_share_memory(result, base):
            TALLY.add("getitem (a copy)", result.nbytes, result.nbytes, result)   # fancy indexing
        return counted(result)

    def __setitem__(self, key, value):
        base, value = self.view(np.ndarray), plain(value)
        target = np.ndarray.__getitem__(base, plain(key))          # a view (a copy for fancy indexing)
        if not same_view(target, value):                             # `a[i] += b` ends in a[i] = a[i]:
            into = target if np.may_share_memory(target, base) else self   # NumPy copies nothing then
            TALLY.add("setitem", extent(value), target.size * target.itemsize, into)
        np.ndarray.__setitem__(base, plain(key), value)

    def copy(self, order="C"):
        result = np.ndarray.copy(self.view(np.ndarray), order)
        TALLY.add("copy", extent(self), result.nbytes, result)
        return counted(result)

    def fill(self, value):
        TALLY.add("fill", 0, self.nbytes, self)
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
            TALLY.add(name, extent(self), result.nbytes, result)
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
            TALLY.add(name, 0, FILLED[name] * result.nbytes, result)
        elif (isinstance(source, np.ndarray) and isinstance(result, np.ndarray)
                and not np.may_share_memory(result, source)):
            TALLY.add(name, extent(source), result.nbytes, result)                # a copy
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
