"""Reverse-mode automatic differentiation: the walk backwards through the graph.

Every Tensor made by an operation points to a `Node` (`tensor.node`): the
operation's `parents` (the entries of the tensors it was computed from: their
Nodes, or the leaf Tensors themselves) and a `backward_fn`
that turns the gradient of the loss with respect to the result into
gradients with respect to each parent (the chain rule for that one
operation). Operators write those two things side by side; this module
keeps them in a Node and walks the graph of Nodes:

1. sort the graph topologically, so that each tensor comes after all the
   tensors it was computed from (an explicit stack, no recursion: a graph
   10,000 operations deep is fine);
2. walk that order backwards from the output, handing each tensor's gradient
   to its `backward_fn` and adding what comes out into its parents' gradients.
   A tensor used twice (a "diamond") receives the sum of both contributions.

The one convention for a `backward_fn`: it returns a tuple with one entry per
parent, in the order of `parents`: the gradient for that parent (an array
shaped like it), or None where the parent needs none. The walk checks the
count, so a forgotten entry is an error, not a silently dropped gradient.

Leaf tensors (made by you, `requires_grad=True`) accumulate into `.grad` with
`+=`, as in PyTorch; call `zero_grad` between steps. Gradients of intermediate
tensors are dropped after use unless `retain_grad()` was called on them.
"""

from __future__ import annotations

_grad_enabled = True


def is_grad_enabled() -> bool:
    """False inside `with no_grad():`, where operations record no graph."""
    return _grad_enabled


class no_grad:
    """Context manager: operations inside it build no graph (for inference).

        with tinyseg.no_grad():
            logits = model(x)       # logits.requires_grad is False
    """

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous


# ----------------------------------------------------------------- the graph
class Node:
    """One recorded operation: the graph's entry for a result, and no more than backward needs.

    Tensor.from_op makes a Node for every result that needs a gradient, and
    the result points to it (`tensor.node`). The Node holds:

        parents       the inputs' entries in the graph: the Node of an input made by an
                      operation, or the input Tensor itself for a leaf (a parameter, an image)
        backward_fn   d loss / d result -> one gradient per parent; its closure
                      keeps the arrays backward reads (each operator's
                      "Saved for backward:" line)
        op            the operation's name ("conv2d"), for errors and pictures
        shape         the result's shape
        retained      None, or, after retain_grad() on the result, a weak reference
                      to the result Tensor: where backward hands its gradient

    It does not hold the result's array, nor the result Tensor (retained is weak:
    the caller who asked for .grad holds the tensor anyway). So the graph keeps
    no result that backward does not read: a convolution's output that only a
    ReLU read is freed as soon as the model's forward lets go of it (ReLU saved
    its own output), as in PyTorch; benchmarks/results/cpu_speed.md measures
    what that saves. What a tool needs beyond this (the module that ran each
    operation, which arrays are still alive) it records while it watches a
    forward pass (recording.py), not here.
    """

    requires_grad = True           # only results that need a gradient get a Node

    def __init__(self, parents, backward_fn, op: str, shape: tuple):
        self.parents = tuple(graph_entry(parent) for parent in parents)
        self.backward_fn = backward_fn
        self.op = op
        self.shape = shape
        self.retained = None       # retain_grad(): weakref.ref(result Tensor)

    def __repr__(self) -> str:
        return f"Node(op={self.op}, shape={self.shape})"


def graph_entry(tensor):
    """A tensor's entry in the graph: the Node of the operation that made it, or, for a
    leaf (or anything made without the graph), the Tensor itself. An entry is its own."""
    node = getattr(tensor, "node", None)        # a Node has no .node: it is an entry already
    return node if node is not None else tensor


# ----------------------------------------------------------------- the backward walk
def topological_order(root) -> list:
    """The entries of the graph ending at `root`, each after its parents.

    The entries are Nodes and, first in their line, the leaf Tensors that
    need a gradient (a leaf has no parents); `root` may be a Tensor or an
    entry. Depth-first search with an explicit stack. An entry is pushed
    twice: once to visit it (push its parents), once more, under its
    parents, to emit it after all of them have been emitted.
    """
    order, visited = [], set()
    stack = [(graph_entry(root), False)]
    while stack:
        entry, parents_done = stack.pop()
        if parents_done:
            order.append(entry)
            continue
        if id(entry) in visited:
            continue
        visited.add(id(entry))
        stack.append((entry, True))
        for parent in entry.parents if isinstance(entry, Node) else ():
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def run_backward(root, grad, found: dict | None = None) -> None:
    """Propagate `grad` (d loss / d root, an array shaped like root) to every leaf.

    Each leaf's gradient is added into its .grad, or, where `found` is a dict,
    into found[id(leaf)] (`gradients`), leaving every .grad as it was.
    """
    root = graph_entry(root)
    grads = {id(root): grad}  # gradients waiting to be handed on, by entry id
    kept = {id(grad)}         # arrays that someone else may hold: copy before keeping them
    for entry in reversed(topological_order(root)):
        grad = grads.pop(id(entry), None)
        if grad is None:  # no path from this entry to the output carries gradient
            continue
        if not isinstance(entry, Node):  # a leaf Tensor: nothing further back
            keep_gradient(entry, grad, kept, found)
            continue
        retained = entry.retained() if entry.retained is not None else None   # retain_grad()
        if retained is not None:
            keep_gradient(retained, grad, kept)
        parent_grads = entry.backward_fn(grad)
        if len(parent_grads) != len(entry.parents):
            raise RuntimeError(f"the backward of {entry.op!r} returned {len(parent_grads)} "
                               f"gradients for {len(entry.parents)} parents")
        for parent, parent_grad in zip(entry.parents, parent_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad


def keep_gradient(tensor, grad, kept: set, found: dict | None = None) -> None:
    """Add `grad` into tensor.grad (a leaf's, or a retained intermediate's), or into
    found[id(tensor)] where `found` is a dict."""
    before = tensor.grad if found is None else found.get(id(tensor))
    if before is not None:
        total = before + grad
    elif id(grad) in kept or grad.base is not None:  # shared, or a view of another array
        total = grad.copy()  # so that two tensors never share one gradient array
    else:
        total = grad
    if found is None:
        tensor.grad = total
    else:
        found[id(tensor)] = total
    kept.add(id(total))


def gradients(output, inputs) -> list:
    """d output / d each of `inputs` (leaf Tensors), as arrays; None for one no path reaches.

    torch.autograd.grad: the walk of output.backward() for a scalar output, but
    no .grad is touched. So two threads may differentiate their own losses of
    one model at once without adding into the same .grad (data_parallel.py).
    """
    if not output.requires_grad or output.size != 1:
        raise RuntimeError(f"gradients() needs a scalar output that requires grad, got shape "
                           f"{output.shape}, requires_grad={output.requires_grad}")
    found = {}
    run_backward(output, output.xp.ones(output.data.shape, dtype=output.dtype), found)
    return [found.get(id(tensor)) for tensor in inputs]
