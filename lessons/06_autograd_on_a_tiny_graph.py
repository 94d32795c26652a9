# %% [markdown]
# # Lesson 6: the autograd engine on a tiny graph
#
# Every model above learned through `loss.backward()`. Here is what that does,
# on a graph small enough to check by hand: each operation remembers its
# inputs and a `backward` rule, `autograd.topological_order` sorts the graph so
# that every tensor comes after its inputs, and `run_backward` walks that
# order in reverse, applying the chain rule one operation at a time.
#
# Read next to it: `tinyseg/tensor.py` (each operation with its backward right
# beside it) and `tinyseg/autograd.py` (the walk).

# %%
import os
from pathlib import Path

import numpy as np

import tinyseg
from tinyseg import Tensor, autograd
from tinyseg.complexity.counting import ResultArrays
from tinyseg.graph import draw, to_dot
from tinyseg.recording import Recording

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A graph: loss = sum(relu(x * w + x))
#
# x is used twice (in the product and in the sum): a "diamond". Its gradient
# must be the sum of what both paths send back. (A Recording watches this
# forward pass for the picture further down; backward does not need it.)

# %%
x = Tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
w = Tensor(np.array([[0.5, 4.0, -1.0]]), requires_grad=True)
with Recording() as seen:
    product = x * w                   # [0.5, -8, -3]
    shifted = product + x             # [1.5, -10, 0]
    activated = shifted.relu()        # [1.5, 0, 0]
    loss = activated.sum()            # 1.5
print("loss =", loss.item())
assert loss.item() == 1.5

# %% [markdown]
# ## The order backward walks
#
# The graph's entries: one `Node` per operation (`loss.node`: its name, its
# parents, its backward rule and its result's shape, nothing more) and the
# leaves x and w themselves, which no operation made. A Node's parents are
# entries too: `loss.node.parents[0]` is the Node of `activated`, not the
# tensor (a Node has no `.data` and no `.grad`). Every entry comes after the
# entries it was computed from.

# %%
order = autograd.topological_order(loss)
for entry in order:
    kind = entry.op if isinstance(entry, autograd.Node) else "leaf"
    print(f"  {kind:<6} {entry.shape}")
assert [e.op for e in order if isinstance(e, autograd.Node)] == ["mul", "add", "relu", "sum"]
assert order[-1] is loss.node and loss.node.parents[0] is activated.node
assert order[0] is x and not hasattr(loss.node, "data")

# %% [markdown]
# ## What the graph keeps
#
# A Node holds its backward rule, and that rule's closure holds exactly the
# arrays it will read; the Node holds no result. Build the same loss again,
# without naming the intermediate results, while a `ResultArrays` watches: a
# recording that keeps only a weak reference to each result's array (one
# that does not keep the array alive; the complexity report counts memory
# so). The product's array is gone at once (the add's backward does not read
# its inputs, and mul's reads x and w), while ReLU's output lives on, because
# ReLU's backward needs it (1 where the output is > 0).

# %%
with ResultArrays() as results:
    again = ((x * w) + x).relu().sum()
relu_node = again.node.parents[0]
add_node = relu_node.parents[0]
mul_node = add_node.parents[0]
print("  kept by the graph:",
      [(e.op, results.array(e) is not None) for e in (mul_node, add_node, relu_node)])
assert results.array(mul_node) is None and results.array(add_node) is None
assert results.array(relu_node) is not None

# %% [markdown]
# ## The picture
#
# An ellipse per operation, a box per tensor; x's box has two arrows out.
# The Nodes give the operations and their parents; the recording `seen` gives
# each result's dtype (and, for a model, the block that ran each operation).
# (`names` labels the two leaves; a model's parameters are named by the model.)

# %%
tensors = {"x": x, "w": w}
dot = to_dot(loss, seen, names=tensors)
print("\n".join(dot.splitlines()[:12]) + "\n  ...")
assert dot.count("-> op") == 6        # two arrows into mul, two into add, one into relu and sum
assert dot.count("v0 -> op") == 2     # x (v0) feeds two operations
path = draw(loss, seen, str(OUT / "06_tiny_graph.svg"), names=tensors)
print("picture:", path)

# %% [markdown]
# ## Backward, and the same by hand
#
# d loss / d activated = 1; relu passes it where shifted > 0 (only element 0);
# shifted = x * w + x, so d/dx = w + 1 and d/dw = x, on element 0 only:
# x.grad = [0.5 + 1, 0, 0] = [1.5, 0, 0], w.grad = [1, 0, 0].

# %%
loss.backward()
print("x.grad =", x.grad, " w.grad =", w.grad)
assert np.array_equal(x.grad, [[1.5, 0.0, 0.0]])
assert np.array_equal(w.grad, [[1.0, 0.0, 0.0]])
assert product.grad is None           # an intermediate's gradient is dropped after use

# %% [markdown]
# ## Gradients accumulate
#
# A leaf's `.grad` is added to (`+=`), as in PyTorch: a second backward through
# a new graph doubles it, until `zero_grad()`.

# %%
(((x * w) + x).relu().sum()).backward()
print("after a second backward: x.grad =", x.grad)
assert np.array_equal(x.grad, [[3.0, 0.0, 0.0]])
x.zero_grad()
assert x.grad is None

# %% [markdown]
# ## Checked against finite differences
#
# The same function at a point where no ReLU sits on its kink.

# %%
x64 = Tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
w64 = Tensor(np.array([[0.5, 4.0, 1.0]]), requires_grad=True)
assert tinyseg.gradcheck(lambda x, w: ((x * w) + x).relu().sum(), x64, w64)
print("gradcheck: passed")
