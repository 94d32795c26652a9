"""What the model benchmarks time: the three models, one pass or step of each, in either framework.

    model, run = STEPS["tinyseg"](CONFIGS["unet"], "train", images, labels, "cpu")   # run(): one step

tinyseg's model, or its PyTorch twin (tinyseg.interop.to_torch: the same
layers and weights), on the CPU or the GPU: an inference pass (batch,
no gradients) or a training step (forward, cross-entropy, backward and an
Adam or SGD step; tinyseg's as `tinyseg train` runs it, on a CPU each core
taking its share of the batch through the whole step where that applies:
tinyseg/data_parallel.py). bench_models.py times the models' tables with these,
bench_unet_step.py the U-Net step; `targets` says which framework and
device pairs this machine can run, `synchronizer` how to wait for a GPU.
"""

from __future__ import annotations

import numpy as np

import tinyseg
from tinyseg import backend, data_parallel, nn, optim
from tinyseg.models import build_model
from common import torch

if torch is not None:
    from tinyseg.interop import to_torch

CONFIGS = {
    "naive": dict(name="naive", in_channels=3, num_classes=4, window=15, width=16),
    "fcn": dict(name="fcn", in_channels=3, num_classes=4, width=32, depth=4),
    "unet": dict(name="unet", in_channels=3, num_classes=4, base_channels=16, depth=3),
}
# Both frameworks use Adam(lr=1e-3) or SGD(lr=0.01, momentum=0.9).
OPTIMIZERS = {"adam": dict(lr=1e-3), "sgd": dict(lr=0.01, momentum=0.9)}


def targets(use_torch: bool = True, use_gpu: bool = True):
    """The (framework, device) pairs this machine can run, and a note for each one it cannot."""
    found, notes = [("tinyseg", "cpu")], []
    if use_torch and torch is None:
        notes.append("PyTorch is not installed: no PyTorch columns (pip install torch)")
    if use_torch and torch is not None:
        found.append(("pytorch", "cpu"))
    if not use_gpu:
        notes.append("GPU skipped (--no-gpu)")
        return found, notes
    if tinyseg.cuda_available():
        found.append(("tinyseg", "cuda"))
    else:
        notes.append(f"no GPU for tinyseg: CuPy or a CUDA device is missing ({backend.INSTALL_HINT})")
    if use_torch and torch is not None and torch.cuda.is_available():
        found.append(("pytorch", "cuda"))
    elif use_torch and torch is not None:
        notes.append("no GPU for PyTorch: torch.cuda.is_available() is False")
    return found, notes


def make_batch(batch: int, size: int, num_classes: int, seed: int = 0):
    """Random images (batch, 3, size, size) float32 and labels (batch, size, size) int64."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, num_classes, (batch, size, size))
    return images, labels


def tinyseg_step(config: dict, mode: str, images, labels, device: str, optimizer: str = "adam"):
    """(model, run): run() does one inference pass or one training step of tinyseg's model."""
    model = build_model(config).to(device)
    x = tinyseg.Tensor(images, device=device)
    if mode == "inference":
        model.eval()

        def run():
            with tinyseg.no_grad():
                return model(x)
        return model, run
    y = backend.to_device(labels, device)
    optimizer = {"adam": optim.Adam, "sgd": optim.SGD}[optimizer](model.parameters(), **OPTIMIZERS[optimizer])

    criterion = nn.CrossEntropyLoss()

    def run():                           # the step of `tinyseg train` (train.py): on the CPU, each
        optimizer.zero_grad()            # core runs it for its share of the batch where the numbers
        loss = data_parallel.loss_and_gradients(model, x, y, criterion)   # are the same (data_parallel.py)
        optimizer.step()
        return loss
    return model, run


def torch_step(config: dict, mode: str, images, labels, device: str, optimizer: str = "adam"):
    """(model, run) for the PyTorch twin, holding the same initial weights as tinyseg's model."""
    model = to_torch(build_model(config)).to(device)
    x = torch.from_numpy(images).to(device)
    if mode == "inference":
        model.eval()

        def run():
            with torch.no_grad():
                return model(x)
        return model, run
    y = torch.from_numpy(labels).to(device)
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer](model.parameters(),
                                                                              **OPTIMIZERS[optimizer])

    def run():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return model, run


STEPS = {"tinyseg": tinyseg_step, "pytorch": torch_step}


def synchronizer(framework: str, device: str):
    """The function that waits for queued GPU work (None on the CPU, where calls are synchronous)."""
    if device == "cpu":
        return None
    if framework == "tinyseg":
        return lambda: backend.synchronize("cuda")
    return torch.cuda.synchronize


def gpu_pool_growth_mib(framework: str, fn) -> float:
    """How far the GPU memory pool grew while fn() ran, in MiB: CuPy's pool, or PyTorch's cache.

    Both keep freed blocks for reuse, so the pool's growth from an emptied
    start is the most the step held at once (plus rounding to block sizes).
    """
    if framework == "tinyseg":
        import cupy  # only reached on a GPU; tinyseg itself asks tinyseg.backend
        pool = cupy.get_default_memory_pool()
        backend.synchronize("cuda")
        pool.free_all_blocks()
        start = pool.total_bytes()
        fn()
        backend.synchronize("cuda")
        return (pool.total_bytes() - start) / 2**20
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_reserved()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_reserved() - start) / 2**20
