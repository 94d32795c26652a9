# %% [markdown]
# # Lesson 5: the U-Net, level by level
#
# The FCN of lesson 4 sees 7 x 7 pixels. The U-Net halves the image level by
# level on the way down (the encoder), so a 3x3 convolution deep down spans
# many input pixels, then climbs back up (the decoder), and at each level
# joins the encoder's full-detail features back in (the skip connections).
# This lesson runs a U-Net one block at a time and prints every shape.
#
# Read next to it: `tinyseg/models/unet.py`, whose docstring draws the levels.

# %%
import os
from pathlib import Path

import numpy as np

import tinyseg
from tinyseg import Tensor, cat
from tinyseg.complexity import count_parameters, receptive_field
from tinyseg.graph import draw
from tinyseg.models import UNet
from tinyseg.recording import Recording

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The model
#
# Base 4 channels, depth 3: levels of 4, 8 and 16 channels, a bottleneck of
# 32 at 1/8 of the size. Its children are lists of blocks: `encoder`,
# `downsample`, `bottleneck`, `upsample`, `decoder`, then the 1x1 `head`.

# %%
model = UNet(in_channels=3, num_classes=4, base_channels=4, depth=3, seed=0).eval()
print(f"parameters: {count_parameters(model):,}")
for name, child in model.named_children():
    print(f"  {name:<13} {type(child).__name__}")

# %% [markdown]
# ## Going down
#
# Each level: two 3x3 convolutions (shape kept), the result kept aside as a
# skip, then 2x2 max pooling halves the height and width.

# %%
x = Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), dtype=np.float32)
print(f"input                  {x.shape}")
skips = []
with tinyseg.no_grad():
    h = x
    for level, (block, down) in enumerate(zip(model.encoder, model.downsample)):
        h = block(h)
        skips.append(h)
        print(f"level {level} encoder block  {h.shape}   (kept as skip {level})")
        h = down(h)
        print(f"level {level} down           {h.shape}")
    h = model.bottleneck(h)
    print(f"bottleneck             {h.shape}")
    assert h.shape == (1, 32, 4, 4)

# %% [markdown]
# ## Coming up
#
# Each level: a 2x2 stride-2 transpose convolution doubles the size and halves
# the channels; `cat` puts the skip's channels beside it (twice the channels);
# two 3x3 convolutions bring them back down.

# %%
with tinyseg.no_grad():
    for up, block, skip in zip(model.upsample, model.decoder, reversed(skips)):
        h = up(h)
        print(f"up                     {h.shape}")
        joined = cat([skip, h], axis=1)
        print(f"  cat with skip        {joined.shape}")
        h = block(joined)
        print(f"  decoder block        {h.shape}")
    logits = model.head(h)
    print(f"head (1x1 conv)        {logits.shape}   one score per class and pixel")
    whole = model(x)
assert logits.shape == (1, 4, 32, 32)
assert np.allclose(logits.numpy(), whole.numpy())
print("block by block == model(x): yes")

# %% [markdown]
# ## How far it sees
#
# Every level down doubles the step of the layers below it, so the receptive
# field grows fast with depth: 18, 44, then 100 pixels (measured).

# %%
for depth, expected in [(1, 18), (2, 44), (3, 100)]:
    thin = UNet(in_channels=1, num_classes=1, base_channels=1, depth=depth)
    field = receptive_field(thin)
    print(f"depth {depth}: receptive field {field[0]} x {field[1]}")
    assert field == (expected, expected)

# %% [markdown]
# ## The picture
#
# The forward pass and loss as a graph, one box per block: `tinyseg graph`
# draws the same (`python -m tinyseg graph --model unet --group-by-module`).
# The graph itself knows only what backward needs; a Recording of the forward
# pass adds which block ran each operation.

# %%
with Recording() as seen:
    loss = tinyseg.functional.cross_entropy(model(x), np.zeros((1, 32, 32), dtype=np.int64))
path = draw(loss, seen, str(OUT / "05_unet_graph.svg"), model=model, group_depth=2)
print("picture:", path)
