# %% [markdown]
# # Lesson 9: the same network elsewhere
#
# A trained network is its layers and its numbers. tinyseg names every
# parameter as PyTorch does and keeps PyTorch's shapes, so the same U-Net can
# be rebuilt in PyTorch with the same weights; and tinyseg can watch its own
# forward pass (a `Recording`) and write each operation down as an ONNX node,
# a file that ONNX Runtime runs without tinyseg. This lesson does both with a
# lesson-sized U-Net and prints the largest difference of the logits. Each
# part skips where its package is missing (`pip install -e ".[torch]"`,
# `pip install -e ".[onnx]"`).
#
# Read next to it: `tinyseg/interop/` (`torch_twins.py`, `torch_weights.py`,
# `onnx_nodes.py`, `onnx_export.py`) and `tinyseg/recording.py`.

# %%
import os
from collections import Counter
from pathlib import Path

import numpy as np

import tinyseg
import tinyseg.functional as F
from tinyseg import Tensor, optim
from tinyseg.checkpoint import save_checkpoint
from tinyseg.data import make_shapes, normalize
from tinyseg.models import UNet

OUT = Path(os.environ.get("TINYSEG_LESSONS_OUT", "runs/lessons"))
OUT.mkdir(parents=True, exist_ok=True)
try:
    import torch
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False
try:
    import onnx  # noqa: F401  (to_onnx imports it; here only to know that it is there)
    import onnxruntime
    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False
print("PyTorch:", "yes" if HAVE_TORCH else "no (its cells skip)",
      "| onnx and onnxruntime:", "yes" if HAVE_ONNX else "no (their cells skip)")

# %% [markdown]
# ## A small trained U-Net and its checkpoint
#
# Base 4 channels, depth 3, batch norm, trained for 30 steps on 16 shapes
# images: enough for the batch-norm running statistics to move away from
# (0, 1), so every number the exports must carry is a real one. The inputs
# are normalised by the training images' mean and standard deviation, as
# `tinyseg train` does, and the checkpoint keeps them.

# %%
data = make_shapes(16, size=32, seed=0)
raw_images = np.stack(data.images)                               # (16, 3, 32, 32) in [0, 1]
normalization = {"mean": raw_images.mean(axis=(0, 2, 3)).tolist(),
                 "std": raw_images.std(axis=(0, 2, 3)).tolist()}
images = Tensor(normalize(raw_images, normalization["mean"], normalization["std"]))
masks = np.stack(data.masks)                                     # (16, 32, 32)

model = UNet(in_channels=3, num_classes=4, base_channels=4, depth=3, batch_norm=True, seed=0)
optimizer = optim.Adam(model.parameters(), lr=0.01)
for step in range(30):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), masks)
    loss.backward()
    optimizer.step()
model.eval()                                                     # running statistics from now on
print(f"loss after 30 steps: {loss.item():.3f}")
checkpoint = OUT / "09_unet.npz"
save_checkpoint(str(checkpoint), {f"model.{k}": v for k, v in model.state_dict().items()},
                {"model_config": model.config, "normalization": normalization,
                 "class_names": data.class_names})
print("checkpoint:", checkpoint)

# %% [markdown]
# ## An image the model has not seen, at a size it must pad
#
# 37 x 45 is not a multiple of 2**3 = 8: the U-Net pads it to 40 x 48 and
# crops its logits back. The largest difference is reported as it is and
# as a fraction of the largest logit (float32 keeps about 7 digits).

# %%
raw = make_shapes(1, size=48, seed=1).images[0][None, :, :37, :45]       # (1, 3, 37, 45) in [0, 1]
x = normalize(raw, normalization["mean"], normalization["std"])
with tinyseg.no_grad():
    ours = model(Tensor(x)).numpy()                                       # (1, 4, 37, 45)
print("tinyseg logits:", ours.shape, f"largest |logit| {np.abs(ours).max():.2f}")


def report(what: str, expected: np.ndarray, theirs: np.ndarray) -> float:
    """Print and return the largest |expected - theirs|."""
    difference = float(np.abs(expected - theirs).max())
    print(f"{what:<24} largest difference {difference:.2e} "
          f"({difference / np.abs(expected).max():.1e} of the largest logit)")
    return difference


# %% [markdown]
# ## PyTorch: the same names, the same numbers
#
# `to_torch` builds the twin from the model's `config`
# (`torch_twins.build_torch_model`) and copies the state dict across, name by
# name: nothing is renamed or reshaped.

# %%
if HAVE_TORCH:
    from tinyseg.interop import to_torch

    module = to_torch(model)
    ours_names = list(model.state_dict())
    theirs_names = [n for n in module.state_dict() if not n.endswith("num_batches_tracked")]
    print("names, tinyseg and PyTorch:", ours_names[:3], "...")
    assert ours_names == theirs_names
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    assert report("PyTorch, 37 x 45:", ours, theirs) <= 1e-5 * max(1.0, np.abs(ours).max())
else:
    print("PyTorch: skipped (pip install -e \".[torch]\")")

# %% [markdown]
# ## ONNX: the recorded forward pass, written down
#
# `to_onnx` runs the model once inside a Recording and writes one ONNX node
# per operation, starting with the normalisation (Sub, Div), so the file
# takes images in [0, 1]. The U-Net's pad and crop read the image's size
# inside the graph, so one file serves every size: here three of them.

# %%
if HAVE_ONNX:
    from tinyseg.interop import to_onnx

    path = OUT / "09_unet.onnx"
    proto = to_onnx(model, str(path), normalization=normalization, class_names=data.class_names)
    kinds = Counter(node.op_type for node in proto.graph.node)
    print(f"{path.name}: opset {proto.opset_import[0].version}, {len(proto.graph.node)} nodes:",
          dict(kinds))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs, = session.run(None, {"image": raw.astype(np.float32)})        # raw: normalised inside
    assert report("ONNX Runtime, 37 x 45:", ours, theirs) <= 1e-4 * max(1.0, np.abs(ours).max())
    for height, width in [(32, 32), (21, 50)]:
        other = make_shapes(1, size=64, seed=2).images[0][None, :, :height, :width]
        with tinyseg.no_grad():
            expected = model(Tensor(normalize(other, normalization["mean"], normalization["std"])))
        got, = session.run(None, {"image": other.astype(np.float32)})
        difference = report(f"ONNX Runtime, {height} x {width}:", expected.numpy(), got)
        assert difference <= 1e-4 * max(1.0, np.abs(got).max())
    assert (theirs.argmax(axis=1) == ours.argmax(axis=1)).mean() > 0.99
    print("the same labels from tinyseg and ONNX Runtime: yes")
else:
    print("ONNX: skipped (pip install -e \".[onnx]\")")

# %% [markdown]
# ## From the command line
#
# The same two files from a training run's checkpoint:
#
#     python -m tinyseg export --checkpoint runs/unet/best.npz --format torch --out model.pt
#     python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx
