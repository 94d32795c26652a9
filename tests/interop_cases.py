"""The models the interop tests carry to PyTorch and ONNX, and how they compare logits.

Small versions of the three models, every layer kind of each (the U-Net with
batch norm and pooling, and with strided convolutions), in eval mode with
batch-norm running statistics away from (0, 1): an export that dropped them,
or swapped mean and variance, would show.
"""

from __future__ import annotations

import numpy as np

from tinyseg.models import build_model

SMALL = {
    "naive": dict(name="naive", in_channels=3, num_classes=4, window=7, width=6, depth=2),
    "fcn": dict(name="fcn", in_channels=3, num_classes=4, width=6, depth=3),
    "unet": dict(name="unet", in_channels=3, num_classes=4, base_channels=4, depth=2,
                 batch_norm=True),
    "unet, strided": dict(name="unet", in_channels=3, num_classes=4, base_channels=3, depth=3,
                          down="conv"),
}


def small_model(name: str, dtype: str = "float32", seed: int = 0):
    """SMALL[name] in `dtype`, in eval mode, with running statistics drawn from `seed`."""
    model = build_model(dict(SMALL[name], dtype=dtype, seed=seed % 1000))
    rng = np.random.default_rng(seed)
    for buffer_name, buffer in model.named_buffers():
        low = 0.5 if buffer_name.endswith("running_var") else -0.5
        buffer.data = rng.uniform(low, low + 1.0, size=buffer.shape).astype(dtype)
    return model.eval()


def largest_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| as a fraction of the largest |logit| (or of 1, for small logits)."""
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / max(1.0, np.abs(ours).max()))
