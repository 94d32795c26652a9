"""The tour: naive sliding window -> FCN -> U-Net, trained and measured side by side.

    python -m tinyseg tour                 # about 6 minutes on a 2-core CPU
    python -m tinyseg tour --budget 60     # a quicker look

The story this measures, in three claims:

1. A sliding window classifies every pixel's window on its own. Neighbouring
   windows overlap almost entirely, so it recomputes shared work, and its cost
   grows as O(H*W*N). `SlidingWindow.to_fcn()` rewrites the *same weights* as
   one convolutional pass, which computes each shared piece once. Compare
   the speed-up printed below with the ratio of multiply-accumulates that
   `python -m tinyseg complexity` predicts for the two forms.
2. An FCN computes every window at once, but at full resolution: its
   receptive field grows only 2 pixels per 3x3 layer, and every layer costs
   H*W*C*C*9 multiply-accumulates.
3. A U-Net downsamples, so deep layers are cheap and see far; then it
   upsamples and uses skip connections to recover the detail. Same budget,
   better masks.

Every model gets the same data, seed and training-time budget. The table
reports parameters, training time, inference time per image at three sizes
(what predict() costs: each model's inference_model(), the sliding window's
to_fcn() form) and validation mIoU; `tour.png` shows truth and each model's prediction on
the same validation images.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.tensor import Tensor
from tinyseg.predictor import Predictor
from tinyseg.run_files import load_model
from tinyseg.train import TrainConfig, build_datasets, fit

MODELS = [("naive", "sliding window"), ("fcn", "FCN"), ("unet", "U-Net")]


def inference_ms(model, size: int, in_channels: int, device: str, repeat: int = 3) -> float:
    """Median milliseconds to label one size x size image with `model` as given (after a warm-up).

    Runs model(x).argmax(axis=1): pass model.inference_model() for what predict()
    costs, or a SlidingWindow itself for its one-window-at-a-time cost.
    """
    model.eval()     # inference: BatchNorm must not learn statistics from the random input
    x = Tensor(np.random.default_rng(0).random((1, in_channels, size, size), dtype=np.float32),
               device=device)
    times = []
    with no_grad():
        for i in range(repeat + 1):
            backend.synchronize(device)
            start = time.perf_counter()
            model(x).argmax(axis=1)
            backend.synchronize(device)
            if i:                                     # the first call is the warm-up
                times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def window_speedups(model, sizes, device: str, log=print) -> list:
    """[(size, sliding-window ms, to_fcn ms, speed-up)] on the same weights."""
    fcn_form = model.to_fcn()
    in_channels = model.config["in_channels"]
    rows = []
    for size in sizes:
        slow = inference_ms(model, size, in_channels, device, repeat=1)
        fast = inference_ms(fcn_form, size, in_channels, device, repeat=3)
        rows.append((size, slow, fast, slow / fast))
        log(f"  {size:4d} x {size:<4d} sliding window {slow:9.1f} ms   as FCN {fast:7.1f} ms   "
            f"speed-up {slow / fast:6.1f}x")
    return rows


def format_rows(rows: list, sizes) -> str:
    header = (f"{'model':15s} {'params':>9s} {'train s':>8s} "
              + " ".join(f"{f'ms@{s}':>9s}" for s in sizes) + f" {'val mIoU':>9s}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['model']:15s} {row['parameters']:9,d} {row['train_seconds']:8.1f} "
                     + " ".join(f"{row['ms'][s]:9.1f}" for s in sizes) + f" {row['miou']:9.3f}")
    return "\n".join(lines)


def run_tour(budget: float = 300.0, out: str = "runs/tour", sizes=(64, 128, 256),
             window_sizes=(32, 64, 128), device: str = "cpu", seed: int = 0,
             train_count: int = 400, val_count: int = 64, size: int = 64,
             show_progress: bool = True, log=print, model_options: dict | None = None) -> dict:
    """Train the three models for budget/3 seconds each; print the table; write tour.png.

    model_options: {name: value} of models/options.py (depth=2, width=16, ...),
    given to every model's TrainConfig; the rest keep the defaults of `tinyseg train`.
    Each model's run folder (OUT/naive, OUT/fcn, OUT/unet) is replaced: a tour
    is a measurement to repeat, not a run to continue.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) \
            or budget <= 0:
        raise ValueError(f"--budget must be a positive number of seconds, got {budget!r}")
    for name, sizes_given in (("--sizes", sizes), ("--window-sizes", window_sizes)):
        if any(s < 1 for s in sizes_given):
            raise ValueError(f"{name} must be positive image sizes, got {list(sizes_given)}")
    rows, models, normalizations = [], {}, {}
    for name, title in MODELS:
        config = TrainConfig(model=name, epochs=10_000, time_budget=budget / len(MODELS),
                             out=os.path.join(out, name), seed=seed, device=device,
                             train_count=train_count, val_count=val_count, size=size,
                             **(model_options or {}))
        log(f"\n== {title}: training for {config.time_budget:.0f} s")
        started = time.perf_counter()
        metrics = fit(config, show_progress=show_progress, log=log, overwrite=True)
        seconds = time.perf_counter() - started
        model, meta = load_model(os.path.join(config.out, "best.npz"), device)
        models[name] = model
        normalizations[name] = meta.get("normalization")     # what its training inputs had
        fastest = model.inference_model()         # what predict() runs (naive: its to_fcn())
        ms = {s: inference_ms(fastest, s, model.in_channels, device) for s in sizes}
        rows.append(dict(model=title, parameters=int(sum(p.size for p in model.parameters())),
                         train_seconds=seconds, ms=ms, miou=float(metrics["mean_iou"])))

    log(f"\nSame data, seed and a {budget / len(MODELS):.0f} s training budget each "
        f"(inference: ms per image with predict(), batch 1, {device}; the sliding window "
        f"predicts through its to_fcn() form):\n")
    log(format_rows(rows, sizes))
    log("\nThe sliding window against its to_fcn() twin (the same weights, one convolutional pass):")
    speedups = window_speedups(models["naive"], window_sizes, device, log)
    picture = write_comparison(out, models, normalizations, config, device)
    log(f"\nwrote {picture}")
    return dict(rows=rows, window_speedups=speedups, picture=picture)


def write_comparison(out: str, models: dict, normalizations: dict, config: TrainConfig, device: str,
                     count: int = 6) -> str:
    """tour.png: validation images, the truth, and each model's prediction, side by side."""
    from tinyseg.visualize import save_grid
    _, val_set = build_datasets(config)
    count = min(count, len(val_set))
    images = [val_set[i][0] for i in range(count)]
    truths = [val_set[i][1] for i in range(count)]
    predictors = {name: Predictor(models[name], normalizations[name], device) for name, _ in MODELS}
    preds = {title: [predictors[name].labels(image) for image in images] for name, title in MODELS}
    path = os.path.join(out, "tour.png")
    save_grid(path, images, truths, preds, val_set.class_names)
    return path
