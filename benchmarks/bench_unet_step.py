"""The U-Net training step, tinyseg against PyTorch: time and memory, side by side.

    python benchmarks/bench_models.py --unet-step               # all four variants, the report
    python benchmarks/bench_models.py --unet-step --repeat 15 --variants adam bn+sgd

Base 16, depth 3, batch 8, 3x128x128 (UNET_STEP), in four variants
(UNET_VARIANTS: with and without batch norm, Adam and SGD; the CPU speed
issue asks for at most 1.8x PyTorch on each). The two frameworks alternate
step by step in one run, so both see the same machine load; the median of
each is reported. Each one's memory is measured in a fresh Python process
(peak RSS growth of its first and second step), so the numbers are
comparable: this file's own command line is that probe, started by
`rss_probe`. bench_models.py's options and report run it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import median_ms, peak_extra_mib, peak_rss_growth_mib, progress, settle  # noqa: E402
from steps import CONFIGS, STEPS, gpu_pool_growth_mib, make_batch, synchronizer, targets  # noqa: E402

UNET_STEP = dict(size=128, batch=8, repeat=5)
QUICK_UNET_STEP = dict(size=16, batch=2, repeat=1)
# The U-Net step's variants: (name, batch_norm, optimizer); steps.OPTIMIZERS gives the settings.
UNET_VARIANTS = {"adam": (False, "adam"), "sgd": (False, "sgd"),
                 "bn+adam": (True, "adam"), "bn+sgd": (True, "sgd")}


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


def main(argv=None):
    """The memory probe, in the fresh process rss_probe starts."""
    parser = argparse.ArgumentParser(description="one U-Net step's memory, in a fresh process")
    parser.add_argument("--memory-probe", choices=list(STEPS), required=True)
    parser.add_argument("--size", type=int, default=UNET_STEP["size"])
    parser.add_argument("--batch", type=int, default=UNET_STEP["batch"])
    parser.add_argument("--variant", choices=list(UNET_VARIANTS), default="adam")
    args = parser.parse_args(argv)
    memory_probe(args.memory_probe, args.size, args.batch, args.variant)


if __name__ == "__main__":
    main()
