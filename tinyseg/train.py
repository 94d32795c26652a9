"""Training, evaluation and prediction: the loop that turns a model into a segmenter.

One training step, from the batch to the matrix multiply:

    images, masks = next(batches)                 # NumPy (B, C, H, W), (B, H, W)
    x = Tensor(images, device=device)             # onto the device, once
    loss = model.training_loss(x, masks, pixel_loss, rng)     # models/base.py:
        # logits = model(x)                       # (B, classes, H, W)   models/unet.py
        # F.cross_entropy(logits, masks, ignore_index=255)       functional/loss.py
    optimizer.zero_grad(); loss.backward()        # autograd.py walks the graph back
    optimizer.step()                              # optim/adam.py updates p.data

The loss is the model's own: `model.training_loss(x, target, criterion, rng)`.
The naive sliding-window model learns from windows instead of images: each
batch of images gives `windows_per_image` random (window, centre label)
pairs, classified on their own. Scoring and pictures run
`model.inference_model()`, the naive model's to_fcn() rewrite.

After every epoch the model is scored on the validation set (one confusion
matrix over every pixel, see metrics.py) and a checkpoint is written; the
best one (by mean IoU) is kept apart. Every random choice comes from the
seed: the batch order and flips from (seed, epoch) in the DataLoader, the
windows of the naive model from a generator whose state is saved, so that a
run resumed from its last checkpoint ends with exactly the weights of a run
that was never interrupted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

import tinyseg.functional as F
from tinyseg import backend, optim
from tinyseg.autograd import no_grad
from tinyseg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, split_prefix
from tinyseg.data import DataLoader, IGNORE_INDEX, load_folder, shapes_dataset
from tinyseg.metrics import ConfusionMatrix, format_table
from tinyseg.models import build_model
from tinyseg.tensor import Tensor


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message says where and why."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in each checkpoint)."""
    model: str = "unet"               # naive | fcn | unet
    data: str = "shapes"              # "shapes" (built in) or a folder of images and masks
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    optimizer: str = "adam"           # adam | sgd
    momentum: float = 0.9             # SGD only
    weight_decay: float = 0.0
    device: str = "cpu"
    seed: int = 0
    out: str = "runs/unet"
    # model shape
    base_channels: int = 16           # U-Net
    depth: int = 3                    # U-Net levels, or FCN 3x3 layers
    width: int = 32                   # FCN / sliding-window channels
    window: int = 15                  # sliding-window size (odd)
    down: str = "pool"                # U-Net downsampling: pool | conv
    batch_norm: bool = True           # U-Net with BatchNorm2d: trains ~2x faster per step
    # data
    size: int = 64                    # built-in images are size x size
    train_count: int = 800
    val_count: int = 64
    classes: int | None = None        # number of classes (folders: else read from the masks)
    augment: bool = True
    windows_per_image: int = 256      # naive model: windows sampled per image per step
    check_every: int = 1              # read the loss (a device->host copy) every this many steps
    time_budget: float = 0.0          # seconds of training (0: no limit); stops mid-epoch when spent


# ----------------------------------------------------------------- building blocks
def build_datasets(config: TrainConfig):
    """(train, val) SegmentationDatasets for config.data."""
    if config.data == "shapes":
        num_classes = config.classes or 4
        common = dict(size=config.size, num_classes=num_classes, seed=config.seed)
        return (shapes_dataset("train", count=config.train_count, **common),
                shapes_dataset("val", count=config.val_count, **common))
    if not os.path.isdir(config.data):
        raise ValueError(f"--data must be 'shapes' or a folder, got {config.data!r} (no such folder)")
    return load_folder(config.data, classes=config.classes, seed=config.seed)


def model_config(config: TrainConfig, in_channels: int, num_classes: int) -> dict:
    """The build_model() config of the model config.model names."""
    common = dict(in_channels=in_channels, num_classes=num_classes, seed=config.seed)
    if config.model == "unet":
        return dict(name="unet", base_channels=config.base_channels, depth=config.depth,
                    down=config.down, batch_norm=config.batch_norm, **common)
    if config.model == "fcn":
        return dict(name="fcn", width=config.width, depth=config.depth, **common)
    if config.model == "naive":
        return dict(name="naive", window=config.window, width=config.width,
                    windows_per_image=config.windows_per_image, **common)
    raise ValueError(f"--model must be naive, fcn or unet, got {config.model!r}")


def make_optimizer(config: TrainConfig, parameters):
    if config.optimizer == "adam":
        return optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                         weight_decay=config.weight_decay)
    raise ValueError(f"--optimizer must be adam or sgd, got {config.optimizer!r}")


def progress(iterable, total: int, description: str, enabled: bool = True):
    """A tqdm progress bar if tqdm is installed (and enabled), else the plain iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True)


# ----------------------------------------------------------------- one epoch
def pixel_loss(logits, target):
    """Cross-entropy over every labelled pixel (or window): the criterion the models are given."""
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def training_loss(model, images, masks, config: TrainConfig, rng):
    """The loss of one batch, as the model computes it (whole images, or sampled windows)."""
    x = Tensor(images, device=config.device)                     # (B, C, H, W)
    target = backend.to_device(masks, config.device)             # (B, H, W)
    return model.training_loss(x, target, pixel_loss, rng)


def train_one_epoch(model, loader, optimizer, config: TrainConfig, epoch: int, rng,
                    show_progress: bool = True, deadline: float = math.inf) -> float:
    """One pass over the training data; returns the mean loss. Stops on a NaN/inf loss.

    Stops early (after a whole step) once time.perf_counter() passes `deadline`.
    """
    model.train()
    total, count, images_seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = progress(loader, len(loader), f"epoch {epoch + 1}/{config.epochs}", show_progress)
    pending = []                                        # losses not yet read back from the device
    for step, (images, masks) in enumerate(bar):
        loss = training_loss(model, images, masks, config, rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pending.append(loss.data)
        images_seen += len(images)
        if len(pending) >= config.check_every or step == len(loader) - 1:
            values = [float(v) for v in pending]        # the only device->host copies
            pending = []
            for offset, value in enumerate(values):
                if not math.isfinite(value):
                    bad_step = step + 2 - len(values) + offset          # counted from 1
                    raise TrainingError(f"the loss became {value} at step {bad_step} of epoch "
                                        f"{epoch + 1}; training stopped and this epoch was not "
                                        f"saved. Try a lower --lr.")
            total += sum(values)
            count += len(values)
            if hasattr(bar, "set_postfix"):
                rate = images_seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{total / count:.4f}", img_s=f"{rate:.1f}")
        if time.perf_counter() > deadline and not pending:
            break
    return total / max(1, count)


def predict_labels(model, images: np.ndarray, device: str, batch_size: int = 16) -> np.ndarray:
    """(N, H, W) int64 labels for (N, C, H, W) images, batch by batch, on the host."""
    model.eval()
    labels = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            x = Tensor(images[start:start + batch_size], device=device)
            labels.append(backend.to_numpy(model.predict(x).data))
    return np.concatenate(labels).astype(np.int64)


def evaluate(model, dataset, device: str, batch_size: int = 16) -> dict:
    """Loss and metrics of `model` on every pixel of `dataset` (one confusion matrix)."""
    model.eval()
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index=IGNORE_INDEX)
    scorer = model.inference_model()             # the naive model's to_fcn(): same labels, far faster
    loss_sum, loss_weight = 0.0, 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with no_grad():
        for images, masks in loader:
            logits = scorer(Tensor(images, device=device))
            valid = int((masks != IGNORE_INDEX).sum())
            if valid:
                loss = F.cross_entropy(logits, backend.to_device(masks, device), ignore_index=IGNORE_INDEX)
                loss_sum += float(loss.item()) * valid
                loss_weight += valid
            matrix.update(backend.to_numpy(logits.data.argmax(axis=1)), masks)
    metrics = matrix.compute()
    metrics["loss"] = loss_sum / max(1, loss_weight)
    return metrics


# ----------------------------------------------------------------- checkpoints
def save_training_checkpoint(path, model, optimizer, config: TrainConfig, epoch: int,
                             class_names, rng, best_miou: float) -> None:
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    meta = dict(model_config=model.config, train_config=asdict(config), epoch=epoch,
                class_names=list(class_names), rng_state=rng.bit_generator.state,
                best_miou=best_miou)
    save_checkpoint(path, arrays, meta)


def load_model(path: str, device: str = "cpu"):
    """(model, meta) from a checkpoint, in eval mode, or CheckpointError with a clear message."""
    arrays, meta = load_checkpoint(path)
    if "model_config" not in meta:
        raise CheckpointError(f"checkpoint {path!r} holds no model configuration")
    try:
        model = build_model(meta["model_config"])
        model.load_state_dict(split_prefix(arrays, "model."))
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path!r} does not fit its model: {error}") from None
    model.eval()     # for prediction: BatchNorm uses (and keeps) its running statistics
    return model.to(device), meta


# ----------------------------------------------------------------- the whole run
def write_history(out: str, history: list) -> None:
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    if history:
        with open(os.path.join(out, "history.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)


def fit(config: TrainConfig, resume: bool = False, show_progress: bool = True, log=print) -> dict:
    """Train as `config` says, writing checkpoints and pictures under config.out.

    Returns the final validation metrics (with the class names under "class_names").
    """
    backend.check_device(config.device)
    train_set, val_set = build_datasets(config)
    os.makedirs(config.out, exist_ok=True)
    last_path = os.path.join(config.out, "last.npz")
    best_path = os.path.join(config.out, "best.npz")
    rng = np.random.default_rng([config.seed, 12345])       # the naive model's windows
    start_epoch, best_miou, history = 0, -1.0, []

    model = build_model(model_config(config, train_set.in_channels, train_set.num_classes))
    model.to(config.device)
    optimizer = make_optimizer(config, list(model.parameters()))
    if resume:
        start_epoch, best_miou, history = resume_from(last_path, model, optimizer, config, rng)
        log(f"resumed from {last_path} after epoch {start_epoch}")
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                        augment=config.augment)
    n_params = sum(p.size for p in model.parameters())
    log(f"{config.model}: {n_params:,} parameters, {len(train_set)} training / {len(val_set)} "
        f"validation images of {train_set.in_channels} channels, {train_set.num_classes} classes, "
        f"on {config.device}")

    deadline = time.perf_counter() + config.time_budget if config.time_budget > 0 else math.inf
    for epoch in range(start_epoch, config.epochs):
        if time.perf_counter() > deadline:
            log(f"time budget of {config.time_budget:g} s spent after {epoch} epochs")
            break
        started = time.perf_counter()
        loader.set_epoch(epoch)
        train_loss = train_one_epoch(model, loader, optimizer, config, epoch, rng, show_progress,
                                     deadline)
        seconds = time.perf_counter() - started
        metrics = evaluate(model, val_set, config.device)
        history.append(dict(epoch=epoch + 1, train_loss=round(train_loss, 6),
                            val_loss=round(metrics["loss"], 6), val_miou=round(metrics["mean_iou"], 6),
                            val_pixel_acc=round(metrics["pixel_accuracy"], 6),
                            seconds=round(seconds, 2)))
        log(f"epoch {epoch + 1:3d}/{config.epochs}  train loss {train_loss:.4f}  val loss "
            f"{metrics['loss']:.4f}  val mIoU {metrics['mean_iou']:.4f}  pixel acc "
            f"{metrics['pixel_accuracy']:.4f}  ({seconds:.1f} s, {len(train_set) / seconds:.1f} img/s)")
        improved = metrics["mean_iou"] > best_miou
        best_miou = max(best_miou, metrics["mean_iou"])
        save_training_checkpoint(last_path, model, optimizer, config, epoch + 1,
                                 train_set.class_names, rng, best_miou)
        if improved:
            save_training_checkpoint(best_path, model, optimizer, config, epoch + 1,
                                     train_set.class_names, rng, best_miou)
        write_history(config.out, history)

    final = evaluate(model, val_set, config.device)
    write_pictures(config.out, model, val_set, history, config.device)
    log("\n" + format_table(final, val_set.class_names))
    log(f"\nwrote {config.out}/: last.npz, best.npz, history.json/csv, predictions.png, history.png")
    final["class_names"] = val_set.class_names
    return final


def resume_from(path: str, model, optimizer, config: TrainConfig, rng) -> tuple:
    """Restore model, optimizer and RNG from `path`; returns (epoch, best_miou, history)."""
    arrays, meta = load_checkpoint(path)
    saved = meta.get("train_config", {})
    for key in ("model", "data", "seed", "batch_size", "optimizer"):
        if saved.get(key) != getattr(config, key):
            raise CheckpointError(f"cannot resume from {path!r}: it was trained with {key}="
                                  f"{saved.get(key)!r}, this run has {key}={getattr(config, key)!r}")
    if meta.get("model_config") != model.config:
        raise CheckpointError(f"cannot resume from {path!r}: its model {meta.get('model_config')} "
                              f"differs from this run's {model.config}")
    model.load_state_dict(split_prefix(arrays, "model."))
    optimizer.load_state_dict(split_prefix(arrays, "optim."))
    rng.bit_generator.state = meta["rng_state"]
    history_path = os.path.join(os.path.dirname(path), "history.json")
    history = []
    if os.path.exists(history_path):
        with open(history_path) as f:
            history = [row for row in json.load(f) if row["epoch"] <= meta["epoch"]]
    return meta["epoch"], meta["best_miou"], history


def write_pictures(out: str, model, dataset, history: list, device: str, count: int = 6) -> None:
    """predictions.png (image | truth | prediction) and history.png (loss and mIoU per epoch)."""
    from tinyseg.visualize import plot_history, save_grid
    count = min(count, len(dataset))
    images = np.stack([dataset[i][0] for i in range(count)])
    truths = np.stack([dataset[i][1] for i in range(count)])
    preds = predict_labels(model, images, device)
    try:
        save_grid(os.path.join(out, "predictions.png"), images, truths, preds, dataset.class_names)
    except ImportError as error:
        print(f"note: no predictions.png ({error})")
    plot_history(os.path.join(out, "history.png"), history)
