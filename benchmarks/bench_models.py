"""Model benchmark: the three models' inference and training-step time against image size.

    python benchmarks/bench_models.py               # tables on stdout
    python benchmarks/bench_models.py --quick       # tiny sizes, one repeat: a smoke test
    python benchmarks/bench_models.py --unet-step   # only the U-Net training step against PyTorch
    python benchmarks/run_suite.py                  # both, written to benchmarks/results/

For naive (SlidingWindow), FCN and U-Net at 32, 64, 128 and 256 pixels square:

    inference   batch 1, no gradients: ms per image
    train       one step: forward, cross-entropy, backward, Adam (batch 4; the
                naive model batch 1, see NAIVE_TRAIN_BATCH, and up to 128 pixels
                unless --naive-256): ms per step

each run by tinyseg (NumPy) and by its PyTorch twin (tinyseg.interop.to_torch: the
same layers and weights) on the CPU, and by both again on the GPU (CuPy, CUDA)
when one is usable. Ratios are tinyseg / PyTorch on one device (lower is
better, 1 = as fast) and CPU / GPU for one framework (the GPU's speed-up).

How each case is timed: one warm-up run (timed, and used to measure memory;
on the GPU after one more run that compiles the kernels), then as many
repeats as fit in --budget seconds (at least 1, at most --repeat); the
median is reported. GPU timings synchronize before each clock read. The
growth exponent b fits time ~ a * (H*W)^b over the sizes.

Memory, in MiB:
    peak        CPU: how far the process's resident memory (RSS) rose during
                the warm-up run, for both frameworks alike (all allocations;
                free memory is handed back to the system first, but what
                cannot be is reused unseen: a lower bound);
                GPU: how far the memory pool grew (CuPy's pool, PyTorch's cache)
    numpy       tinyseg on the CPU: tracemalloc's peak of NumPy arrays held at once

The U-Net step (--unet-step): base 16, depth 3, batch 8, 3x128x128, in four
variants (UNET_VARIANTS: with and without batch norm, Adam and SGD; the CPU
speed issue asks for at most 1.8x PyTorch on each). The two frameworks
alternate step by step in one run; each one's memory is measured in a fresh
Python process (peak RSS growth of its first and second step) so the
numbers are comparable. The Markdown report is report.py's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinyseg  # noqa: E402
import tinyseg.functional as F  # noqa: E402
from tinyseg import backend, optim  # noqa: E402
from tinyseg.models import build_model  # noqa: E402
from common import (gpu_stamp, growth_exponent, library_versions, lookup,  # noqa: E402
                    machine_stamp, median_ms, peak_extra_mib, peak_rss_growth_mib, progress,
                    repeats_within, settle, threads_stamp, torch)
from report import markdown  # noqa: E402

if torch is not None:
    from tinyseg.interop import to_torch  # noqa: E402

CONFIGS = {
    "naive": dict(name="naive", in_channels=3, num_classes=4, window=15, width=16),
    "fcn": dict(name="fcn", in_channels=3, num_classes=4, width=32, depth=4),
    "unet": dict(name="unet", in_channels=3, num_classes=4, base_channels=16, depth=3),
}
MODES = ("inference", "train")
SIZES = (32, 64, 128, 256)
QUICK_SIZES = (8, 16)
NAIVE_TRAIN_MAX_SIZE = 128  # larger naive training steps only with --naive-256 (a minute, 3 GB each)
BATCH = {"inference": 1, "train": 4}
MODEL_REPEAT = 5           # most timed repeats per model case (--repeat)
NAIVE_TRAIN_BATCH = 1      # the naive graph keeps every window's activations: ~60 KB per pixel
UNET_STEP = dict(size=128, batch=8, repeat=5)
QUICK_UNET_STEP = dict(size=16, batch=2, repeat=1)
# The U-Net step's variants: (name, batch_norm, optimizer). Both frameworks use
# Adam(lr=1e-3) or SGD(lr=0.01, momentum=0.9).
UNET_VARIANTS = {"adam": (False, "adam"), "sgd": (False, "sgd"),
                 "bn+adam": (True, "adam"), "bn+sgd": (True, "sgd")}
OPTIMIZERS = {"adam": dict(lr=1e-3), "sgd": dict(lr=0.01, momentum=0.9)}


# ----------------------------------------------------------- what runs where

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


def batch_size(name: str, mode: str, train_batch: int) -> int:
    if mode == "inference":
        return BATCH["inference"]
    return NAIVE_TRAIN_BATCH if name == "naive" else train_batch


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

    def run():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
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


def show_chunks(model, chunks: int, description: str) -> None:
    """A progress bar over the naive model's chunks of windows, by wrapping its forward_patches.

    Both SlidingWindow and its twin call self.forward_patches once per chunk;
    the wrapper, set on this one instance, ticks the bar and calls the original.
    """
    original = model.forward_patches
    bar = progress(total=chunks, desc=description, unit="chunk", leave=False)

    def forward_patches(patches):
        if bar.n == chunks:                                       # a new forward pass
            bar.reset()
        bar.update(1)
        return original(patches)
    model.forward_patches = forward_patches


# ----------------------------------------------------------- one case

def measure(name: str, mode: str, size: int, framework: str, device: str, train_batch: int = 4,
            budget_s: float = 3.0, max_repeat: int = 5) -> dict:
    """Time (and measure the memory of) one model, mode, size, framework and device: one row."""
    config = CONFIGS[name]
    batch = batch_size(name, mode, train_batch)
    images, labels = make_batch(batch, size, config["num_classes"])
    model, run = STEPS[framework](config, mode, images, labels, device)
    chunks = -(-batch * size * size // model.chunk_size) if name == "naive" else 0
    if chunks >= 4:
        show_chunks(model, chunks, f"  {name} {mode} {size}px {framework}/{device}")
    sync = synchronizer(framework, device)

    def once():
        run()
        if sync:
            sync()

    if device == "cuda":                # the first GPU run compiles kernels: keep it out of the clock
        once()
    start = time.perf_counter()                                   # the warm-up run, timed
    peak = peak_rss_growth_mib(once) if device == "cpu" else gpu_pool_growth_mib(framework, once)
    first_ms = (time.perf_counter() - start) * 1e3
    repeats = repeats_within(budget_s, first_ms, max_repeat)
    ms = median_ms(run, repeat=repeats, warmup=0, sync=sync)
    row = dict(model=name, mode=mode, size=size, pixels=size * size, batch=batch,
               framework=framework, device=device, ms=ms, ms_per_image=ms / batch,
               first_ms=first_ms, repeats=repeats, peak_MiB=peak,
               timed_once=repeats == 1 and max_repeat > 1)           # the budget allowed only one
    if framework == "tinyseg" and device == "cpu":
        row["numpy_MiB"] = peak_extra_mib(run)
    del model, run
    gc.collect()
    return row


# ----------------------------------------------------------- the model tables

def run_models(sizes=SIZES, models=tuple(CONFIGS), naive_256: bool = False, use_torch: bool = True,
               use_gpu: bool = True, train_batch: int = 4, budget_s: float = 3.0,
               max_repeat: int = 5) -> dict:
    """Every (model, mode, size) on every available framework and device; rows, fits and notes."""
    found, notes = targets(use_torch, use_gpu)
    jobs, skipped = [], []
    for name in models:
        for mode in MODES:
            for size in sizes:
                if name == "naive" and mode == "train" and size > NAIVE_TRAIN_MAX_SIZE and not naive_256:
                    skipped.append(f"naive train at {size}x{size}: skipped by default (about a minute "
                                   f"and 3 GB per framework); pass --naive-256 to include it")
                    continue
                jobs += [(name, mode, size, framework, device) for framework, device in found]
    rows = []
    bar = progress(total=len(jobs), desc="models", unit="case")
    for name, mode, size, framework, device in jobs:
        bar.set_description(f"{name} {mode} {size}px {framework}/{device}")
        rows.append(measure(name, mode, size, framework, device, train_batch, budget_s, max_repeat))
        bar.update(1)
    bar.close()
    return dict(targets=[f"{framework}/{device}" for framework, device in found], notes=notes,
                skipped=list(dict.fromkeys(skipped)), rows=rows, ratios=ratios(rows),
                growth=growth_fits(rows))


def ratios(rows: list) -> list:
    """For each model, mode and size: tinyseg / PyTorch per device, CPU / GPU per framework."""
    table = lookup(rows)
    out = []
    for name, mode, size in dict.fromkeys((r["model"], r["mode"], r["size"]) for r in rows):
        def ms(framework, device):
            row = table.get((name, mode, size, framework, device))
            return row["ms"] if row else None
        entry = dict(model=name, mode=mode, size=size)
        for device in ("cpu", "cuda"):
            if ms("tinyseg", device) and ms("pytorch", device):
                entry[f"tinyseg/pytorch {device}"] = ms("tinyseg", device) / ms("pytorch", device)
        for framework in ("tinyseg", "pytorch"):
            if ms(framework, "cpu") and ms(framework, "cuda"):
                entry[f"{framework} cpu/cuda"] = ms(framework, "cpu") / ms(framework, "cuda")
        out.append(entry)
    return out


def growth_fits(rows: list) -> list:
    """b of time ~ a * (H*W)^b for each model, mode, framework and device (two sizes or more)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["mode"], r["framework"], r["device"]), []).append(r)
    fits = []
    for (name, mode, framework, device), group in groups.items():
        group = sorted(group, key=lambda r: r["pixels"])
        if len(group) < 2:
            continue
        pixels, times = [r["pixels"] for r in group], [r["ms"] for r in group]
        a, b = growth_exponent(pixels, times)
        _, b_last = growth_exponent(pixels[-2:], times[-2:])
        fits.append(dict(model=name, mode=mode, framework=framework, device=device, a_ms=a, b=b,
                         b_two_largest=b_last, sizes=[r["size"] for r in group]))
    return fits


# ----------------------------------------------------------- the U-Net training step

def unet_config(variant: str) -> tuple:
    """(model config, optimizer name) of a U-Net step variant (see UNET_VARIANTS)."""
    batch_norm, optimizer = UNET_VARIANTS[variant]
    return dict(CONFIGS["unet"], batch_norm=batch_norm), optimizer


def unet_step(size: int = 128, batch: int = 8, repeat: int = 5, use_torch: bool = True,
              use_gpu: bool = True, probes: bool = True, variant: str = "adam") -> dict:
    """tinyseg's U-Net training step against PyTorch's, side by side; time and memory."""
    config, optimizer = unet_config(variant)
    images, labels = make_batch(batch, size, config["num_classes"])
    found, notes = targets(use_torch, use_gpu)
    result = dict(variant=variant, config=config, optimizer=optimizer, size=size, batch=batch,
                  repeat=repeat, notes=notes, devices={})
    for device in ("cpu", "cuda"):
        frameworks = [framework for framework, where in found if where == device]
        if not frameworks:
            continue
        runs = {fw: STEPS[fw](config, "train", images, labels, device, optimizer)[1] for fw in frameworks}
        syncs = {fw: synchronizer(fw, device) for fw in frameworks}
        times = {fw: [] for fw in frameworks}
        for fw in frameworks:                                     # warm up both
            median_ms(runs[fw], repeat=1, warmup=0, sync=syncs[fw])
        for _ in progress(range(repeat), desc=f"U-Net step {variant} {device}", unit="step", leave=False):
            for fw in frameworks:                                 # alternate: the same machine load
                settle()                                          # the other one's threads go idle
                times[fw].append(median_ms(runs[fw], repeat=1, warmup=0, sync=syncs[fw]))
        entry = {f"{fw}_ms": statistics.median(times[fw]) for fw in frameworks}
        if len(frameworks) == 2:
            entry["ratio"] = entry["tinyseg_ms"] / entry["pytorch_ms"]
        if device == "cpu":
            entry["tinyseg_tracemalloc_MiB"] = peak_extra_mib(runs["tinyseg"])
            if probes:
                for fw in progress(frameworks, desc="U-Net step memory, fresh processes", leave=False):
                    entry[f"{fw}_rss"] = rss_probe(fw, size, batch, variant)
        else:
            for fw in frameworks:
                entry[f"{fw}_pool_MiB"] = gpu_pool_growth_mib(fw, runs[fw])
        result["devices"][device] = entry
        del runs
        gc.collect()
    return result


def rss_probe(framework: str, size: int, batch: int, variant: str) -> dict:
    """Peak RSS growth of the U-Net step, measured in a fresh Python process (see memory_probe)."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe", framework,
               "--size", str(size), "--batch", str(batch), "--variant", variant]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_probe(framework: str, size: int, batch: int, variant: str) -> None:
    """In a fresh process: print (as JSON) how far RSS rose in the first and the second step.

    The first step also pays one-time costs (optimizer state, library caches);
    the second reuses memory the allocator kept from the first, so the truth
    for a long training run lies between the two.
    """
    config, optimizer = unet_config(variant)
    images, labels = make_batch(batch, size, config["num_classes"])
    _, run = STEPS[framework](config, "train", images, labels, "cpu", optimizer)
    gc.collect()
    first = peak_rss_growth_mib(run)
    second = peak_rss_growth_mib(run)
    print(json.dumps(dict(framework=framework, first_step_MiB=first, second_step_MiB=second)))


# ----------------------------------------------------------- the command line

def stamp(results: dict) -> str:
    """machine_stamp(), the threads, and the GPU when one was used."""
    used_gpu = any(t.endswith("/cuda") for t in results.get("models", {}).get("targets", []))
    used_gpu = used_gpu or any("cuda" in step["devices"] for step in results.get("unet_steps", []))
    gpu = gpu_stamp() if used_gpu else ""
    return f"{machine_stamp()}; {threads_stamp()}" + (f"; {gpu}" if gpu else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by this script and run_suite.py."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"image sides (default {list(SIZES)})")
    parser.add_argument("--models", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--naive-256", action="store_true",
                        help=f"also train the naive model above {NAIVE_TRAIN_MAX_SIZE} pixels (slow)")
    parser.add_argument("--train-batch", type=int, default=BATCH["train"])
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"most timed repeats per case (default {MODEL_REPEAT}); the U-Net step's alternating "
                             f"steps (default {UNET_STEP['repeat']})")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of timed repeats per case (at least one repeat)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-gpu", action="store_true", help="leave the GPU out")
    parser.add_argument("--no-unet-step", action="store_true", help="leave the U-Net step case out")
    parser.add_argument("--unet-step", action="store_true", help="run only the U-Net step case")
    parser.add_argument("--variants", nargs="+", choices=list(UNET_VARIANTS),
                        help="U-Net step variants (default: all; with --quick only adam)")


def run(args) -> dict:
    """Everything the arguments ask for, as one JSON-ready dict."""
    use_torch, use_gpu = not args.no_torch, not args.no_gpu
    results = dict(versions=library_versions())
    names = ["unet"] if args.unet_step else args.models
    results["configs"] = {name: CONFIGS[name] for name in names}
    results["parameters"] = {name: sum(int(np.prod(p.shape)) for p in build_model(CONFIGS[name]).parameters())
                             for name in names}
    if not args.unet_step:
        sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
        repeat, budget = (1, 0.0) if args.quick else (args.repeat or MODEL_REPEAT, args.budget)
        results["settings"] = dict(sizes=list(sizes), inference_batch=BATCH["inference"],
                                   train_batch=args.train_batch, naive_train_batch=NAIVE_TRAIN_BATCH,
                                   max_repeat=repeat, budget_s=budget, naive_256=args.naive_256)
        results["models"] = run_models(sizes, args.models, args.naive_256, use_torch, use_gpu,
                                       args.train_batch, budget, repeat)
    if args.unet_step or not args.no_unet_step:
        step = QUICK_UNET_STEP if args.quick else UNET_STEP
        variants = args.variants or (["adam"] if args.quick else list(UNET_VARIANTS))
        repeat = step["repeat"] if args.quick or args.repeat is None else args.repeat
        results["unet_steps"] = [unet_step(step["size"], step["batch"], repeat, use_torch,
                                           use_gpu, variant=variant) for variant in variants]
    results["machine"] = stamp(results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--memory-probe", choices=list(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=UNET_STEP["size"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=UNET_STEP["batch"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=list(UNET_VARIANTS), default="adam", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        return memory_probe(args.memory_probe, args.size, args.batch, args.variant)
    results = run(args)
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
