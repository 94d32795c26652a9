"""Counting what a forward pass costs: parameters, multiply-accumulates, activation memory.

Nothing here is a formula typed in by hand for each model. MACs and
activations come from running forward() once and walking the autograd graph
it leaves behind (autograd.topological_order). Every Node names the
operation that made it (`.op`), its result's shape and its parents, which
is all the MACs take:

    conv2d            out.size * (C_in * kh * kw)     each output sums C_in*kh*kw products
    conv2d_relu       the same (its ReLU counts 0, as ReLU alone does)
    conv_transpose2d  in.size * (C_out * kh * kw)     each input paints a C_out x kh x kw patch
    linear, matmul    out.size * in_features          each output sums in_features products

Every other operation tinyseg records (ReLU, pooling, batch norm (with its ReLU), padding,
cat, the losses, elementwise arithmetic...) costs a few operations per value,
far fewer than a convolution's C_in*kh*kw, and counts 0 MACs. Those are
listed by name in NO_MACS. An operation in neither list is an error, not a
silent 0: renaming "conv2d", or adding a new operator, makes the count stop
with a message saying where to add it.

The activations need one more fact, which the graph deliberately does not
keep: which results are still alive once forward() has returned. A
ResultArrays, a recording switched on around the forward pass, notes a weak
reference to each result's array (one that does not keep it alive); after
the pass, the arrays still there are the ones the graph holds for backward.
"""

from __future__ import annotations

import math
import weakref

from tinyseg import autograd
from tinyseg.autograd import Node
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor

MAC_OPS = ("conv2d", "conv2d_relu", "conv_transpose2d", "linear", "matmul")
NO_MACS = frozenset({
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "relu", "sum",    # tensor.py
    "reshape", "transpose", "getitem", "cat", "to", "astype",
    "max_pool2d", "batch_norm", "batch_norm_relu", "pad", "softmax", "log_softmax",   # functional/
    "pad_to_multiple", "crop_like",
    "cross_entropy", "dice_loss",
})


def count_parameters(model) -> int:
    """Trained numbers in the model: sum of p.size over model.parameters()."""
    return sum(p.size for p in model.parameters())


def multiply_accumulates(node: Node) -> int:
    """MACs of the one operation recorded as `node`; ValueError for an operation not listed."""
    return macs_of(node.op, node.shape, [parent.shape for parent in node.parents])


def macs_of(op: str, shape: tuple, input_shapes: list) -> int:
    """MACs of operation `op` whose result has `shape`, from its inputs' shapes alone."""
    size = math.prod(shape)
    if op in ("conv2d", "conv2d_relu"):           # inputs: x, weight (O, C, kh, kw)[, bias]
        c, kh, kw = input_shapes[1][1:]
        return size * c * kh * kw
    if op == "conv_transpose2d":                  # inputs: x, weight (C_in, C_out, kh, kw)[, bias]
        c_out, kh, kw = input_shapes[1][1:]
        return math.prod(input_shapes[0]) * c_out * kh * kw
    if op == "linear":                            # inputs: x (B, in), weight (out, in)[, bias]
        return size * input_shapes[1][1]
    if op == "matmul":                            # (..., n, k) @ (..., k, m) -> (..., n, m)
        return size * input_shapes[0][-1]
    if op in NO_MACS:
        return 0
    raise ValueError(f"complexity: operation {op!r} (result shape {shape}) is not known "
                     f"to the MAC count; add it to MAC_OPS (with its count) or to NO_MACS in "
                     f"tinyseg/complexity/counting.py")


def count_macs(output: Tensor) -> int:
    """Multiply-accumulates of every operation in the graph that ends at `output`."""
    return sum(multiply_accumulates(entry) for entry in autograd.topological_order(output)
               if isinstance(entry, Node))                    # a leaf Tensor is no operation


class ResultArrays(Recording):
    """A recording that notes, for each Node made while it is on, a weak reference to its
    result's array, and keeps nothing alive: no operation, no module output.

        with ResultArrays() as results:
            loss = model(x).relu().sum()
        results.array(loss.node)        # the array if something still holds it, else None

    A weak reference answers whether anything else still holds the array: a
    backward closure that saved it (ReLU keeps its output), or the caller.
    """

    def __init__(self):
        super().__init__()
        self.weak = weakref.WeakKeyDictionary()   # Node -> weak reference to its result's array

    def add_operation(self, operation) -> None:
        node = operation.result.node
        if node is not None:                      # a result backward visits (not under no_grad)
            self.weak[node] = weak_reference(operation.result.data)

    def add_module_output(self, module, output) -> None:
        pass                                      # holding it would keep it alive

    def array(self, node: Node):
        """The array `node`'s operation made, if something still holds it, else None."""
        reference = self.weak.get(node)
        return reference() if reference is not None else None


def weak_reference(array):
    """A weak reference to an array, or None where the array type takes none."""
    try:
        return weakref.ref(array)
    except TypeError:
        return None


def storage(array):
    """The array that owns `array`'s memory (a reshape or a crop is a view of another one)."""
    while isinstance(array.base, type(array)):
        array = array.base
    return array


def activation_bytes(output: Tensor, results: ResultArrays) -> int:
    """Bytes of the intermediate results still alive in the graph ending at `output`.

    results: the ResultArrays that was on while the graph was made.

    The graph keeps a result only while something holds it: the backward
    closure of an operation that reads it (a convolution keeps its input,
    ReLU its output) or the caller (`output` itself). A convolution's output
    that only ReLU read is already gone. So this is the memory a training
    step holds between forward and backward. Parameters (leaves) are not
    counted, nor is the input or anything computed from it alone (the
    to_fcn() form's padded input): they need no gradient, so they are not in
    the graph. A view (a reshape, a crop) shares its parent's memory and is
    counted once.

    An estimate from below of the peak: the convolutions' column buffers are
    transient and not counted, nor the few small arrays a closure keeps
    besides results (batch norm's per-channel vectors).
    """
    owners = {}
    for entry in autograd.topological_order(output):
        array = results.array(entry) if isinstance(entry, Node) else None   # not a leaf
        if array is not None:
            owner = storage(array)
            owners[id(owner)] = owner.nbytes
    return sum(owners.values())


def trace(forward, x: Tensor) -> tuple:
    """(MACs, activation bytes) of forward(x), measured on the graph it builds."""
    if not autograd.is_grad_enabled():
        raise RuntimeError("complexity: the graph is needed to count; call outside no_grad()")
    with ResultArrays() as results:
        output = forward(x)
    return count_macs(output), activation_bytes(output, results)


def blank_input(model, shape: tuple) -> Tensor:
    """Zeros of `shape` with the model's dtype and device (the counts do not depend on values)."""
    first = next(model.parameters())
    return Tensor(first.xp.zeros(shape, dtype=first.dtype))


def forward_cost(model, size: tuple) -> tuple:
    """(MACs, activation bytes) of model(x) for one (1, C, H, W) image, size = (H, W).

    (For a SlidingWindow this is its O(H * W) forward; `window_cost` is faster.)
    The forward runs in evaluation mode, so that BatchNorm leaves its running
    statistics alone; the graph, and so the cost, is the same as in training.
    """
    was_training = model.training
    model.eval()
    try:
        return trace(model, blank_input(model, (1, model.in_channels) + tuple(size)))
    finally:
        model.train(was_training)


def window_cost(model) -> tuple:
    """(MACs, activation bytes) of a SlidingWindow's classifier on ONE k x k window.

    SlidingWindow.forward runs this classifier once per pixel, so a whole
    H x W image costs H * W times as much; measuring one window is exact
    and avoids an O(H * W) forward pass.
    """
    k = model.window
    return trace(model.forward_patches, blank_input(model, (1, model.in_channels, k, k)))
