# %% [markdown]
# # Lesson 7: the CPU against the GPU
#
# Every operator in tinyseg asks `tinyseg/backend.py` which array module its
# input lives in (`xp`: NumPy on the CPU, CuPy on a CUDA GPU) and runs the same
# lines on either. This lesson runs one U-Net training step on both devices,
# checks that they agree, and times them. Without CuPy and a GPU it shows the
# CPU half and skips the rest.
#
# Read next to it: `tinyseg/backend.py`. GPU setup: `pip install -e ".[gpu]"`.

# %%
import time

import numpy as np

import tinyseg
import tinyseg.functional as F
from tinyseg import Tensor, backend
from tinyseg.models import UNet

HAVE_GPU = tinyseg.cuda_available()
print("CUDA GPU with CuPy:", "yes" if HAVE_GPU else "no (the GPU cells below skip)")

# %% [markdown]
# ## One code path, two array modules
#
# A tensor's `.xp` is the module its data lives in; an operator calls
# `xp.exp`, `xp.matmul`... and never names NumPy or CuPy itself.

# %%
x = Tensor(np.random.default_rng(0).random((2, 3, 32, 32)), dtype=np.float32)
print("on", x.device, "->", x.xp.__name__)
assert x.xp is np and backend.get_array_module(x.data) is np
if HAVE_GPU:
    x_gpu = x.to("cuda")
    print("on", x_gpu.device, "->", x_gpu.xp.__name__)
    try:
        x + x_gpu                                                # never copied behind your back
    except ValueError as error:
        print("mixing devices:", error)
    else:
        raise AssertionError("adding a CPU and a GPU tensor should fail")

# %% [markdown]
# ## One training step on each device
#
# The same U-Net (same seed, same weights), the same batch: forward, loss,
# backward. The float32 results agree to rounding.

# %%
def training_step(device: str, images: np.ndarray, masks: np.ndarray, repeats: int = 3):
    """(loss, head weight gradient as NumPy, ms per step) of a U-Net on `device`."""
    model = UNet(in_channels=3, num_classes=4, base_channels=8, depth=2, seed=0).to(device)
    batch = Tensor(images).to(device)
    target = backend.to_device(masks, device)
    times = []
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        loss = F.cross_entropy(model(batch), target)
        loss.backward()
        backend.synchronize(device)                              # GPU work is asynchronous
        times.append(1000 * (time.perf_counter() - start))
    return loss.item(), backend.to_numpy(model.head.weight.grad), min(times)


rng = np.random.default_rng(1)
images = rng.random((4, 3, 64, 64)).astype(np.float32)
masks = rng.integers(0, 4, size=(4, 64, 64))
cpu_loss, cpu_grad, cpu_ms = training_step("cpu", images, masks)
print(f"cpu:  loss {cpu_loss:.6f}, {cpu_ms:7.1f} ms per step (batch 4, 3 x 64 x 64)")
assert np.isfinite(cpu_loss) and np.abs(cpu_grad).sum() > 0

if HAVE_GPU:
    training_step("cuda", images, masks, repeats=1)              # the first call compiles kernels
    gpu_loss, gpu_grad, gpu_ms = training_step("cuda", images, masks)
    print(f"cuda: loss {gpu_loss:.6f}, {gpu_ms:7.1f} ms per step ({cpu_ms / gpu_ms:.1f}x the CPU)")
    assert abs(gpu_loss - cpu_loss) < 1e-4 * max(1.0, abs(cpu_loss))
    assert np.allclose(gpu_grad, cpu_grad, rtol=1e-3, atol=1e-5)
    print("the two devices agree: yes")
else:
    print("cuda: skipped (no GPU)")
