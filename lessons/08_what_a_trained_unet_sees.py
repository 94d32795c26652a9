# %% [markdown]
# # Lesson 8: what a trained U-Net sees
#
# Lessons 4 and 5 measured what a network CAN see: its receptive field, the
# input pixels an output pixel depends on at all. This lesson trains a small
# U-Net for a few seconds and then looks at what it DOES compute, with the
# tools of `python -m tinyseg inspect`:
#
# 1. its feature maps, each stage's output, recorded during one forward pass;
# 2. what one pixel looked at: the gradient of its score with respect to the
#    image, against the theoretical receptive field;
# 3. where it is unsure: the entropy of its softmax probabilities.
#
# Read next to it: `tinyseg/inspection/` (`feature_maps.py`, `saliency.py`,
# `uncertainty.py`) and `tinyseg/recording.py`.

# %%
import os
from pathlib import Path

import numpy as np

from tinyseg.autograd import no_grad
from tinyseg.complexity import field_reach, receptive_field
from tinyseg.inspection import (boundary_pixel, channel_grid, class_boundaries, entropy,
                                mass_radius, pixel_gradient, stage_outputs)
from tinyseg.inspection.pictures import entropy_panels, feature_panel, saliency_panels, save_panels
from tinyseg.predictor import Predictor
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor
from tinyseg.train import TrainConfig, build_datasets, fit

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Train a small U-Net (about 5 seconds)
#
# Base 4 channels, depth 2, for 6 epochs on 256 of the built-in 48 x 48
# images with two classes, background and disc, so that a few seconds of
# training make a model worth looking at (telling discs from squares takes
# the default run's minutes). Its receptive field, 44 x 44, fits in the image.

# %%
config = TrainConfig(model="unet", classes=2, size=48, train_count=256, val_count=16, base_channels=4,
                     depth=2, epochs=6, lr=0.004, batch_size=8, seed=0, out=str(OUT / "08_unet_run"))
metrics = fit(config, show_progress=False, overwrite=True)
predictor, meta = Predictor.from_checkpoint(str(OUT / "08_unet_run" / "best.npz"))
net = predictor.network()                           # the trained U-Net, in eval mode
_, val_set = build_datasets(config)
image, truth = val_set[0]                           # (3, 48, 48) in [0, 1], (48, 48) labels
x = predictor.normalized(image)                     # as training fed it: per-channel mean 0, std 1

# %% [markdown]
# ## 1. Feature maps: each stage's output
#
# A `Recording` watches one ordinary forward pass and keeps every module's
# output; `net.stages()` names the blocks worth a picture. `stage_outputs`
# is exactly this, so the pictures are what the pass computed, not a copy.

# %%
with no_grad(), Recording() as seen:
    net(Tensor(x[None]))
recorded = seen.outputs_of(net)                     # {module path: output Tensor}
maps = stage_outputs(net, x)
for stage, values in maps.items():
    dead = int(sum(channel.max() == channel.min() for channel in values))
    print(f"{stage:<12} {str(recorded[stage].shape):<18} {dead} of {len(values)} channels constant here")
    assert values.shape == recorded[stage].shape[1:]
    assert np.array_equal(values, recorded[stage].data[0])
for stage in ("encoder.0", "bottleneck", "decoder.1"):
    path = OUT / f"08_features_{stage}.png"
    save_panels(path, feature_panel(stage, (1,) + maps[stage].shape, channel_grid(maps[stage])))
    print("picture:", path)

# %% [markdown]
# The first block responds to edges, colours and the background's stripes
# at full size; the bottleneck works at 12 x 12 with 16 channels, each pixel
# standing for a 4 x 4 patch; the last decoder block is back at 48 x 48,
# where the discs stand out from the background.
#
# ## 2. What one pixel looked at
#
# Pick a pixel on the edge of a shape. Its score for the winning class is
# one number; one backward pass gives its gradient with respect to every
# input pixel. The theoretical receptive field says which pixels it CAN
# depend on; the gradient says how much it does: the effective field, the
# square that holds 90% of the gradient's mass.

# %%
pixel = boundary_pixel(truth)                       # on a true class boundary, nearest the centre
gradient = pixel_gradient(predictor, image, pixel)
strength = gradient.strength                        # (48, 48): |d score / d input| summed over channels
radius = mass_radius(strength, gradient.centre)
field = receptive_field(net)                        # measured by perturbation (lesson 5)
print(f"pixel {pixel}: class {gradient.label} ({meta['class_names'][gradient.label]})")
print(f"theoretical receptive field {field[0]} x {field[1]}; the gradient's 90% lies within "
      f"{radius} px: a {2 * radius + 1} x {2 * radius + 1} square")
rows, cols = np.indices(strength.shape)
distance = np.maximum(abs(rows - pixel[0]), abs(cols - pixel[1]))
for r in (0, 1, 2, 4, 8, 16):
    print(f"  within {r:2d} px: {strength[distance <= r].sum() / strength.sum():6.1%} of the gradient")
reach = field_reach(net)                            # how far the field reaches from a pixel
assert not strength[distance > max(reach)].any(), "the gradient left the theoretical field"
assert 2 * radius + 1 < min(field), "the effective field should be smaller than the theoretical one"
path = OUT / "08_saliency.png"
save_panels(path, saliency_panels(image, strength, gradient.centre, radius, field))
print("picture:", path)

# %% [markdown]
# The theoretical field is 44 x 44 pixels, but the gradient fades with the
# distance from the pixel: its 90% fits in a smaller square, and the field's
# outer rings add almost nothing. A trained network leans on what is near
# (Luo et al., 2016, found the effective field much smaller than the
# theoretical one in far larger networks).
#
# ## 3. Where it is unsure
#
# The softmax gives each pixel two probabilities; their entropy
# -sum p log p is 0 when the model is sure and log 2 = 0.69 when it has no
# idea. Over the validation images, compare the pixels on a true class
# boundary with those inside the discs and those of the background.

# %%
regions = {"on a boundary": [], "inside a disc": [], "background": []}
for index in range(len(val_set)):
    picture, labels = val_set[index]
    h = entropy(predictor.probabilities(picture))   # (48, 48)
    edge = class_boundaries(labels)
    regions["on a boundary"].append(h[edge])
    regions["inside a disc"].append(h[~edge & (labels == 1)])
    regions["background"].append(h[~edge & (labels == 0)])
means = {name: float(np.concatenate(values).mean()) for name, values in regions.items()}
for name, mean in means.items():
    print(f"mean entropy {name:<14} {mean:.3f}   (log 2 = {np.log(2):.3f})")
assert means["on a boundary"] > 2 * max(means["inside a disc"], means["background"]), \
    "the model should hesitate most on class boundaries"
probabilities = predictor.probabilities(image)
path = OUT / "08_entropy.png"
save_panels(path, entropy_panels(image, probabilities.argmax(axis=0), entropy(probabilities), 2))
print("picture:", path)

# %% [markdown]
# On the command line the same three views of any image are
# `python -m tinyseg inspect --checkpoint runs/unet/best.npz photo.png --out inspect/`.
