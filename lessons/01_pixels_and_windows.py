# %% [markdown]
# # Lesson 1: pixels, windows, and what the naive approach costs
#
# Segmentation gives every pixel a label. The first idea: cut out the window
# around a pixel, ask a small classifier what the centre pixel is, and repeat
# for every pixel. This lesson builds that model (`tinyseg.models.SlidingWindow`),
# counts what it costs, and shows the same weights run as one convolutional
# pass (`to_fcn()`) give the same labels for far less work.
#
# Run it: `python lessons/01_pixels_and_windows.py` (pictures go to
# `$TINYSEG_LESSONS_OUT`, default `runs/lessons/`). Read next to it:
# `tinyseg/models/sliding_window.py`.

# %%
import os
import time
from pathlib import Path

import numpy as np

import tinyseg
from tinyseg.complexity import count_parameters, forward_cost, window_cost
from tinyseg.models import SlidingWindow
from tinyseg.visualize import save_grid

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## An image and its labels
#
# A 16 x 16 grey image with a bright disc on a dark background; the mask says
# which pixels are disc (class 1) and which are background (class 0).

# %%
size = 16
rows, cols = np.mgrid[0:size, 0:size]
mask = ((rows - 7.5) ** 2 + (cols - 9.5) ** 2 < 5 ** 2).astype(np.int64)      # (H, W) labels
rng = np.random.default_rng(0)
image = (0.2 + 0.6 * mask + 0.05 * rng.standard_normal((size, size))).astype(np.float32)
print("image", image.shape, "labels", np.bincount(mask.ravel()), "(background, disc)")

# %% [markdown]
# ## The window around one pixel
#
# A 7 x 7 window centred on pixel (8, 3) sees part of the disc's edge. The
# classifier sees only these 49 numbers to decide the centre's label.

# %%
window = 7
r = window // 2
row, col = 8, 3
padded = np.pad(image, r)                                   # border pixels get a full window too
patch = padded[row:row + window, col:col + window]          # the window of pixel (row, col)
print(f"window of pixel ({row}, {col}):")
print(np.round(patch, 1))
assert patch[r, r] == image[row, col]                       # its centre is the pixel itself

seen = np.zeros((size, size), dtype=np.int64)
seen[max(0, row - r):row + r + 1, max(0, col - r):col + r + 1] = 2
path = save_grid(OUT / "01_window.png", [image[None]], [mask], {"the 7x7 window": [seen]}, scale=8)
print("picture:", path)

# %% [markdown]
# ## The naive model: one window at a time
#
# `SlidingWindow` is a patch classifier: unpadded 3x3 convolutions shrink the
# 7 x 7 window to 3 x 3, a Linear layer turns it into one score per class.
# Its forward runs that on the window of every pixel.

# %%
model = SlidingWindow(in_channels=1, num_classes=2, window=window, width=8, depth=2, seed=0)
x = tinyseg.Tensor(image[None, None])                       # (N, C, H, W) = (1, 1, 16, 16)
start = time.perf_counter()
with tinyseg.no_grad():
    naive_logits = model(x)                                 # (1, 2, 16, 16)
naive_ms = 1000 * (time.perf_counter() - start)
print(model)
print(f"parameters: {count_parameters(model):,}; logits {naive_logits.shape} in {naive_ms:.1f} ms")

# %% [markdown]
# ## What it costs
#
# One window costs a fixed number of multiply-accumulates (MACs), counted on
# the graph of one forward pass. The image costs H * W times that: nothing is
# shared between neighbouring windows, though they overlap in 48 of 49 pixels.

# %%
per_window, _ = window_cost(model)
fcn = model.to_fcn()                                        # the same weights, one pass
print(f"one window: {per_window:,} MACs")
print(f"{'image':>10}{'naive MACs':>14}{'to_fcn MACs':>14}{'ratio':>8}")
for side in (16, 32, 64, 128):
    naive_macs = side * side * per_window
    fcn_macs, _ = forward_cost(fcn, (side, side))
    print(f"{side:>4} x {side:<4}{naive_macs:>14,}{fcn_macs:>14,}{naive_macs / fcn_macs:>8.1f}")
    assert fcn_macs < naive_macs

# %% [markdown]
# ## The same labels, far less work
#
# `to_fcn()` rewrites the Linear layer as a 3 x 3 convolution and runs the
# whole stack over the padded image at once: every window's features are
# computed once and shared. The logits agree with the naive model's.

# %%
start = time.perf_counter()
with tinyseg.no_grad():
    fcn_logits = fcn(x)
fcn_ms = 1000 * (time.perf_counter() - start)
difference = float(np.abs(fcn_logits.numpy() - naive_logits.numpy()).max())
print(f"to_fcn(): {fcn_ms:.1f} ms against {naive_ms:.1f} ms; largest logit difference {difference:.1e}")
assert difference < 1e-4, difference
assert np.array_equal(fcn_logits.argmax(axis=1).numpy(), naive_logits.argmax(axis=1).numpy())
print("same labels at every pixel: yes")
