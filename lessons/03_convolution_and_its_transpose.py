# %% [markdown]
# # Lesson 3: convolution, its transpose, and the adjoint test
#
# `F.conv2d(x, w)` is `w @ im2col(x)` (lesson 2). Its transpose,
# `F.conv_transpose2d`, runs the other way: each input pixel paints a
# weighted kernel-sized patch of the output. The two are adjoints, and that is
# the whole reason a convolution's backward is cheap: the gradient with
# respect to the input IS a transpose convolution of the output's gradient.
#
# Read next to it: `tinyseg/functional/conv.py`, the textbook kernels. On the
# CPU the same numbers come by default from their fast twins in
# `fast_conv.py` (the line printed below says which form runs); the section
# "The same numbers from both forms" shows how to switch and compares them.

# %%
import os
from pathlib import Path

import numpy as np

import tinyseg
import tinyseg.functional as F
from tinyseg import Tensor
from tinyseg.visualize import save_grid

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
print(F.kernels.describe())

# %% [markdown]
# ## Convolution is a sum over each window
#
# out[n, o, y, x] = sum over c, i, j of w[o, c, i, j] * x[n, c, y*s + i - p, x*s + j - p].
# Written as plain loops, it agrees with `F.conv2d`.

# %%
def conv2d_loops(x, w, stride, padding):
    """The definition, one output value at a time (float64, slow, obvious)."""
    n_, c_, h, width = x.shape
    o_, _, kh, kw = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    out = np.zeros((n_, o_, oh, ow))
    for n in range(n_):
        for o in range(o_):
            for y in range(oh):
                for x_ in range(ow):
                    window = padded[n, :, y * stride:y * stride + kh, x_ * stride:x_ * stride + kw]
                    out[n, o, y, x_] = (window * w[o]).sum()
    return out


x = rng.standard_normal((1, 2, 7, 7))
w = rng.standard_normal((3, 2, 3, 3))                       # (out, in, kh, kw)
y = F.conv2d(Tensor(x), Tensor(w), stride=2, padding=1)      # (1, 3, 4, 4)
print("conv2d:", x.shape, "->", y.shape)
assert np.allclose(y.numpy(), conv2d_loops(x, w, stride=2, padding=1))
print("agrees with the loops: yes")

# %% [markdown]
# ## The transpose goes back up
#
# With the SAME weight array (read as (in, out, kh, kw) = (3, 2, 3, 3)),
# conv_transpose2d maps a (1, 3, 4, 4) map back to (1, 2, 7, 7):
# OH = (H - 1) * stride - 2 * padding + kh = 3 * 2 - 2 + 3 = 7.

# %%
g = rng.standard_normal(y.shape)
back = F.conv_transpose2d(Tensor(g), Tensor(w), stride=2, padding=1)
print("conv_transpose2d:", g.shape, "->", back.shape)
assert back.shape == x.shape

# %% [markdown]
# ## The adjoint test
#
# For every x and g: <conv2d(x, w), g> == <x, conv_transpose2d(g, w)>.
# (The transpose is not the inverse: it does not give x back. It is the
# matrix transpose of the convolution seen as one big matrix.)

# %%
left = float((y.numpy() * g).sum())
right = float((x * back.numpy()).sum())
print(f"<conv2d(x, w), g> = {left:.10f}")
print(f"<x, conv_transpose2d(g, w)> = {right:.10f}")
assert np.isclose(left, right, rtol=1e-12)

# %% [markdown]
# ## So the backward of conv2d is conv_transpose2d
#
# Backpropagating g through conv2d gives, for the input, exactly the
# transpose convolution of g: each one's backward is the other's forward.

# %%
xt = Tensor(x, requires_grad=True)
F.conv2d(xt, Tensor(w), stride=2, padding=1).backward(g)
assert np.allclose(xt.grad, back.numpy())
print("x.grad after conv2d(x).backward(g) == conv_transpose2d(g, w): yes")

# %% [markdown]
# ## A live gradient check
#
# `tinyseg.gradcheck` compares backward() with finite differences,
# (f(x + eps d) - f(x - eps d)) / (2 eps), for the input, the weight and the
# bias, in float64. A wrong backward would be off by O(1) and raise.

# %%
x64 = Tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
w64 = Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
b64 = Tensor(rng.standard_normal(3), requires_grad=True)
assert tinyseg.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), x64, w64, b64)
print("gradcheck conv2d (stride 2, padding 1): passed")
g64 = Tensor(rng.standard_normal((1, 3, 3, 3)), requires_grad=True)
assert tinyseg.gradcheck(lambda g, w: F.conv_transpose2d(g, w, stride=2, padding=1), g64, w64)
print("gradcheck conv_transpose2d (stride 2, padding 1): passed")

# %% [markdown]
# ## The same numbers from both forms
#
# Inside `with F.kernels("textbook"):` a convolution runs the kernels of
# `conv.py`, `W @ im2col(x)`: step into `F.conv2d` there with a debugger and
# you reach `im2col`. Outside it, `fast_conv.py`'s twins (`fast_forward` for
# `textbook_forward`, ...) build the columns one cache-sized band at a time,
# never the whole matrix. Same convolution, same gradients, to rounding.

# %%
forms = {}
for form in ("textbook", "fast"):
    with F.kernels(form):
        xt = Tensor(x, requires_grad=True)
        y_form = F.conv2d(xt, Tensor(w), stride=2, padding=1)
        y_form.backward(g)
        forms[form] = (y_form.numpy(), xt.grad)
difference = max(np.abs(a - b).max() for a, b in zip(forms["textbook"], forms["fast"]))
print(f"largest difference, textbook against fast, output and input gradient: {difference:.1e}")
assert difference < 1e-12

# %% [markdown]
# ## What a filter sees
#
# A vertical-edge filter over a disc lights up its left and right edges; the
# 2x2 stride-2 transpose convolution with a weight of ones copies each pixel
# into a 2 x 2 block (the U-Net's way up, before it learns its weights).

# %%
rows, cols = np.mgrid[0:24, 0:24]
disc = ((rows - 11.5) ** 2 + (cols - 11.5) ** 2 < 8 ** 2).astype(np.float64)[None, None]
edges = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).reshape(1, 1, 3, 3)
response = F.conv2d(Tensor(disc), Tensor(edges), padding=1).numpy()          # (1, 1, 24, 24)
up = F.conv_transpose2d(Tensor(disc[:, :, ::2, ::2]), Tensor(np.ones((1, 1, 2, 2))), stride=2).numpy()
assert up.shape == disc.shape and np.array_equal(up[0, 0, ::2, ::2], disc[0, 0, ::2, ::2])
mask = disc[0, 0].astype(np.int64)
path = save_grid(OUT / "03_filters.png", [disc[0], np.abs(response[0]), up[0]], [mask] * 3, scale=4)
print("picture (rows: a disc, |vertical edges|, half size and back up):", path)
