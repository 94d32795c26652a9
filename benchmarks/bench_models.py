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

each run by tinyseg (NumPy) and by its PyTorch twin (steps.py: the same
layers and weights) on the CPU, and by both again on the GPU (CuPy, CUDA)
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

The U-Net step (--unet-step) against PyTorch, in four variants, is
bench_unet_step.py's. The Markdown report is report.py's.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.models import build_model  # noqa: E402
from bench_unet_step import QUICK_UNET_STEP, UNET_STEP, UNET_VARIANTS, unet_step  # noqa: E402
from common import (gpu_stamp, growth_exponent, library_versions, lookup,  # noqa: E402
                    machine_stamp, median_ms, peak_extra_mib, peak_rss_growth_mib, progress,
                    repeats_within, threads_stamp)
from report import markdown  # noqa: E402
from steps import CONFIGS, STEPS, gpu_pool_growth_mib, make_batch, synchronizer, targets  # noqa: E402

MODES = ("inference", "train")
SIZES = (32, 64, 128, 256)
QUICK_SIZES = (8, 16)
NAIVE_TRAIN_MAX_SIZE = 128  # larger naive training steps only with --naive-256 (a minute, 3 GB each)
BATCH = {"inference": 1, "train": 4}
MODEL_REPEAT = 5           # most timed repeats per model case (--repeat)
NAIVE_TRAIN_BATCH = 1      # the naive graph keeps every window's activations: ~60 KB per pixel


# ----------------------------------------------------------- one case

def batch_size(name: str, mode: str, train_batch: int) -> int:
    if mode == "inference":
        return BATCH["inference"]
    return NAIVE_TRAIN_BATCH if name == "naive" else train_batch


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
    results = run(parser.parse_args(argv))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
