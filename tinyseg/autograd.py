"""Reverse-mode automatic differentiation: the walk backwards through the graph.

Every Tensor made by an operation remembers its `parents` (the tensors it was
computed from) and a `backward_fn` that turns the gradient of the loss with
respect to the tensor into gradients with respect to each parent (the chain
rule for that one operation). Operators write those two things side by side;
this module only walks the graph:

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


# ----------------------------------------------------------------- which module is running
_module_stack = []   # the Modules whose forward() is running now, outermost first


def current_module():
    """The innermost Module whose forward() is running, or None outside every module.

    Tensor.from_op records it on each new graph node (`tensor.module`), so a
    picture of the graph (tinyseg/graph.py) can group operations by the layer,
    block or U-Net level that made them. Backward never looks at it.
    """
    return _module_stack[-1] if _module_stack else None


class module_scope:
    """Context manager that Module.__call__ wraps around forward(): `module` is running."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        _module_stack.append(self.module)

    def __exit__(self, *exc_info):
        _module_stack.pop()


# ----------------------------------------------------------------- the backward walk
def topological_order(root) -> list:
    """Tensors of the graph ending at `root`, every tensor after its parents.

    Depth-first search with an explicit stack. A tensor is pushed twice: once
    to visit it (push its parents), once more, under its parents, to emit it
    after all of them have been emitted.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, parents_done = stack.pop()
        if parents_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        for parent in tensor.parents:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def run_backward(root, grad) -> None:
    """Propagate `grad` (d loss / d root, an array shaped like root) to every leaf."""
    grads = {id(root): grad}  # gradients waiting to be handed on, by tensor id
    kept = {id(grad)}         # arrays that someone else may hold: copy before keeping them
    for tensor in reversed(topological_order(root)):
        grad = grads.pop(id(tensor), None)
        if grad is None:  # no path from this tensor to the output carries gradient
            continue
        if tensor.backward_fn is None or tensor.keeps_grad:
            if tensor.grad is not None:
                tensor.grad = tensor.grad + grad
            elif id(grad) in kept or grad.base is not None:  # shared, or a view of another array
                tensor.grad = grad.copy()  # so that two tensors never share one gradient array
            else:
                tensor.grad = grad
            kept.add(id(tensor.grad))
        if tensor.backward_fn is None:  # a leaf: nothing further back
            continue
        parent_grads = tensor.backward_fn(grad)
        if len(parent_grads) != len(tensor.parents):
            raise RuntimeError(f"the backward of {tensor.op!r} returned {len(parent_grads)} "
                               f"gradients for {len(tensor.parents)} parents")
        for parent, parent_grad in zip(tensor.parents, parent_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
