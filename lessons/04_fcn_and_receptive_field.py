# %% [markdown]
# # Lesson 4: the FCN and its receptive field
#
# A fully convolutional network (FCN) is 3x3 convolutions at full resolution,
# then a 1x1 convolution to one score per class: every window at once, as the
# to_fcn() rewrite of lesson 1 showed. Its weakness is how little each output
# pixel sees: every 3x3 layer widens the view by only 2 pixels.
#
# Read next to it: `tinyseg/models/fcn.py` and
# `tinyseg/complexity/receptive_fields.py`.

# %%
import os
from pathlib import Path

import numpy as np

import tinyseg
import tinyseg.functional as F
from tinyseg import Tensor
from tinyseg.complexity import chain_receptive_field, count_parameters, forward_cost, receptive_field
from tinyseg.models import FCN
from tinyseg.visualize import save_grid

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The model, and what one forward pass costs
#
# Each 3x3 layer from C to C channels costs H * W * C * C * 9
# multiply-accumulates, whatever it learns; the count on the graph agrees.

# %%
model = FCN(in_channels=1, num_classes=2, width=8, depth=3, seed=1)
print(model)
h = w = 32
macs, activations = forward_cost(model, (h, w))
by_hand = h * w * (1 * 8 * 9 + 8 * 8 * 9 + 8 * 8 * 9 + 8 * 2)   # three 3x3 layers and the 1x1 head
print(f"parameters {count_parameters(model):,}; MACs on {h} x {w}: {macs:,} (by hand {by_hand:,})")
assert macs == by_hand

# %% [markdown]
# ## The receptive field, measured
#
# `receptive_field(model)` perturbs input rows and columns and watches the
# centre output pixel; for a chain of layers the textbook formula
# r = 1 + sum of (k - 1) * (product of earlier strides) says the same:
# 2 * depth + 1 for 3x3 layers of stride 1.

# %%
print(f"{'depth':>5}{'measured':>12}{'formula':>12}")
for depth in (1, 2, 3, 4, 6):
    fcn = FCN(in_channels=1, num_classes=2, width=1, depth=depth)
    measured, formula = receptive_field(fcn), chain_receptive_field(fcn)
    print(f"{depth:>5}{'%d x %d' % measured:>12}{'%d x %d' % formula:>12}")
    assert measured == formula == (2 * depth + 1, 2 * depth + 1)

# %% [markdown]
# ## Seen through the gradient
#
# The gradient of one output pixel's score with respect to the input is
# non-zero only inside that pixel's receptive field: backward walks the same
# windows backwards. For depth 3 it stays inside a 7 x 7 square (and fills
# it, unless a ReLU happens to be off along every path to some pixel).

# %%
x = Tensor(np.random.default_rng(1).random((1, 1, h, w)), requires_grad=True, dtype=np.float32)
logits = model(x)                                            # (1, 2, 32, 32)
centre = (16, 20)
logits[0, :, centre[0], centre[1]].sum().backward()          # d scores(16, 20) / d input
touched = np.argwhere(x.grad[0, 0] != 0)
assert len(touched) > 0, "no gradient reached the input"
rows, cols = touched[:, 0], touched[:, 1]
print(f"input pixels that move output pixel {centre}: rows {rows.min()}..{rows.max()}, "
      f"cols {cols.min()}..{cols.max()}")
assert rows.min() >= centre[0] - 3 and rows.max() <= centre[0] + 3
assert cols.min() >= centre[1] - 3 and cols.max() <= centre[1] + 3
field = np.zeros((h, w), dtype=np.int64)
field[rows, cols] = 1
path = save_grid(OUT / "04_receptive_field.png", [x.numpy()[0]], [field], scale=4)
print("picture (in colour: the pixels the output at (16, 20) depends on):", path)

# %% [markdown]
# ## Why it cannot tell a disc from a square
#
# Inside a big shape a 7 x 7 window sees the same flat colour whether the
# shape is a disc or a square, so no FCN of depth 3 can label those pixels
# differently: its outputs there are identical.

# %%
grid_rows, grid_cols = np.mgrid[0:h, 0:w]
disc = ((grid_rows - 15.5) ** 2 + (grid_cols - 15.5) ** 2 < 13 ** 2).astype(np.float32)
square = ((abs(grid_rows - 15.5) < 12) & (abs(grid_cols - 15.5) < 12)).astype(np.float32)
with tinyseg.no_grad():
    scores = model(Tensor(np.stack([disc, square])[:, None]))              # (2, 2, 32, 32)
inside = scores.numpy()[:, :, 12:20, 12:20]                                # the middle 8 x 8
assert np.allclose(inside[0], inside[1])
print("scores in the middle of a disc and of a square: identical, whatever the weights")
loss = F.cross_entropy(scores, np.zeros((2, h, w), dtype=np.int64))
print(f"(an untrained FCN's loss on them: {loss.item():.3f})")
