# %% [markdown]
# # Lesson 2: im2col by hand, on a 4 x 4 image
#
# Lesson 1's naive model pushed every window through the classifier on its
# own. im2col does the same in bulk: copy every window into one column of a
# matrix, and one matrix multiply applies a filter to all windows at once.
# This lesson builds the columns with a plain loop, checks them against
# `tinyseg.im2col.im2col`, and shows that `col2im` is its adjoint.
#
# Read next to it: the docstring of `tinyseg/im2col.py`, which walks this
# same 4 x 4 image.

# %%
import os
from pathlib import Path

import numpy as np

from tinyseg.im2col import col2im, im2col
from tinyseg.visualize import save_grid

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The image and its windows
#
# Pixels a..p are 0..15. A 3 x 3 window fits at 2 x 2 = 4 positions (stride 1,
# no padding), with top-left corners a, b, e, f.

# %%
image = np.arange(16.0).reshape(1, 1, 4, 4)                  # (N, C, H, W)
print(image[0, 0])
kernel, stride, padding = (3, 3), (1, 1), (0, 0)
out_h = out_w = 4 - 3 + 1                                     # 2 x 2 output pixels

# %% [markdown]
# ## Columns with a loop
#
# Each window, read row by row, becomes one column: 9 rows (one per tap of the
# window) by 4 columns (one per output pixel).

# %%
by_hand = np.zeros((9, out_h * out_w))
for y in range(out_h):
    for x in range(out_w):
        window = image[0, 0, y:y + 3, x:x + 3]               # the window at output pixel (y, x)
        by_hand[:, y * out_w + x] = window.ravel()
print("columns by hand (one column per window):")
print(by_hand)

columns = im2col(image, kernel, stride, padding)              # (C*kh*kw, N*OH*OW)
print("im2col:", columns.shape)
assert np.array_equal(columns, by_hand)
print("im2col gives the same matrix: yes")

# %% [markdown]
# ## A filter on every window with one product
#
# A 3 x 3 filter, flattened to a row of 9 weights, times the columns gives the
# 4 outputs at once: (1 x 9) @ (9 x 4) = (1 x 4). The same as summing each
# window times the filter in a loop.

# %%
filter_3x3 = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])   # a vertical edge
product = (filter_3x3.reshape(1, 9) @ columns).reshape(out_h, out_w)
loop = np.array([[(image[0, 0, y:y + 3, x:x + 3] * filter_3x3).sum() for x in range(out_w)]
                 for y in range(out_h)])
print("filter @ columns:\n", product)
assert np.allclose(product, loop)
print("the same as a loop over windows: yes")

# %% [markdown]
# ## Each pixel is copied up to 9 times
#
# im2col trades memory for one fast matrix multiply. `col2im` adds columns
# back onto the pixels they came from; on a matrix of ones it counts, for each
# pixel, how many windows hold it: pixel f (row 1, col 1) is in all four.

# %%
coverage = col2im(np.ones_like(columns), image.shape, kernel, stride, padding)[0, 0]
print("windows holding each pixel:\n", coverage)
assert coverage[1, 1] == 4 and coverage[0, 0] == 1 and coverage.sum() == columns.size

# %% [markdown]
# ## col2im is the adjoint of im2col
#
# For any image x and any columns c: <im2col(x), c> == <x, col2im(c)>. That is
# why col2im is the gradient of im2col, and why a convolution's backward
# (lesson 3) is built from it.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 5))
for stride, padding in [((1, 1), (0, 0)), ((2, 1), (1, 1))]:
    cols = im2col(x, kernel, stride, padding)
    c = rng.standard_normal(cols.shape)
    left = float((cols * c).sum())
    right = float((x * col2im(c, x.shape, kernel, stride, padding)).sum())
    print(f"stride {stride}, padding {padding}: <im2col(x), c> = {left:.6f}, <x, col2im(c)> = {right:.6f}")
    assert np.isclose(left, right, rtol=1e-12)

no_labels = np.zeros((4, 4), dtype=np.int64)
path = save_grid(OUT / "02_coverage.png", [coverage[None]], [no_labels], scale=24)
print("picture (brighter = in more windows):", path)
