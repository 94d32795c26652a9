"""Training: the loop that turns a model into a segmenter.

One training step, from the batch to the matrix multiply:

    images, masks = next(batches)                 # NumPy (B, C, H, W), (B, H, W)
    images = normalize(images, mean, std)         # per channel, the training images' statistics
    x = Tensor(images, device=device)             # onto the device, once
    loss = model.training_loss(x, masks, criterion, rng)      # models/base.py:
        # logits = model(x)                       # (B, classes, H, W)   models/unet.py
        # criterion(logits, masks): --loss, e.g. nn.CrossEntropyLoss   nn/loss.py
    optimizer.zero_grad(); loss.backward()        # autograd.py walks the graph back (on a CPU,
                                                  # each core its share of the batch: data_parallel.py)
    optimizer.step()                              # optim/adam.py updates p.data

The loss is the model's own: `model.training_loss(x, target, criterion, rng)`.
The naive sliding-window model learns from windows instead of images: each
batch of images gives `windows_per_image` random (window, centre label)
pairs, classified on their own. Scoring and pictures run
`model.inference_model()`, the naive model's to_fcn() rewrite.

A batch whose masks label no pixel is skipped (it has no loss to learn
from). The loss is read back every `check_every` steps; an inf or NaN loss,
or weights that became inf or NaN, stop the run with a TrainingError that
names the step, before anything of that epoch is saved.

After every epoch the model is scored on the validation set (evaluate.py: one
confusion matrix over every pixel) and a checkpoint is written; the best one
(by mean IoU) is kept apart. What goes on from epoch to epoch (the model, the
optimizer, the schedule, the RNG, the input normalisation, the class
weights, the history and the best score) is one TrainingRun
(training_run.py): a checkpoint is its state_dict(), --resume its
load_state_dict(). Every file is replaced in one atomic step (checkpoint.py),
so a run killed at any instant resumes from its last epoch. Every random
choice comes from the seed: the batch order and flips from (seed, epoch) in
the DataLoader, the windows of the naive model from a generator whose state
is saved, so that a run resumed from its last checkpoint ends with exactly
the weights of a run that was never interrupted. The settings themselves,
their checks and which may change on --resume are train_config.py's table.
Scoring (evaluate, predict_labels) lives in evaluate.py; loading a model,
the history files and the run folder itself in run_files.py.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from tinyseg import backend, data_parallel, share_processes
from tinyseg.checkpoint import load_checkpoint
from tinyseg.data import DataLoader, IGNORE_INDEX, load_folder, shapes_dataset
from tinyseg.data.class_weights import format_class_weights
from tinyseg.data.mask_labels import MaskLabels
from tinyseg.data.normalize import normalized
from tinyseg.evaluate import evaluate, pixel_loss
from tinyseg.gradient_norms import GradientNorms
from tinyseg.predictor import Predictor
from tinyseg.progress import progress
from tinyseg.nn.loss import make_loss
from tinyseg.run_files import (PICTURE_COUNT, prepare_out, remove_run, run_file_names, write_history,
                               write_pictures)
from tinyseg.metrics import format_table
from tinyseg.tensor import Tensor
from tinyseg.train_config import (TrainConfig, check_config, check_data_folder, ready_to_train,
                                  resume_changes)
from tinyseg.training_run import TrainingError, TrainingRun


# ----------------------------------------------------------------- building blocks
def build_datasets(config: TrainConfig, show_progress: bool = False, deadline: float | None = None,
                   mask_labels: MaskLabels | None = None):
    """(train, val) datasets for config.data: the built-in shapes or a folder.

    A folder's check pass shows progress when it takes a while, and stops
    with data.OutOfTime past `deadline` (--time-budget bounds the whole run).
    mask_labels: how the masks become class indices; default: config's
    --mask-colors, --label-map and --reduce-zero-label (a checkpoint passes
    the ones it stored, so eval needs no files besides the data).
    """
    if config.data == "shapes":
        config = ready_to_train(config)                    # the default counts
        common = dict(size=config.size, num_classes=config.classes or 4, seed=config.seed)
        return (shapes_dataset("train", count=config.train_count, **common),
                shapes_dataset("val", count=config.val_count, **common))
    check_data_folder(config.data)
    if mask_labels is None:
        mask_labels = MaskLabels.from_files(config.mask_colors, config.label_map, config.reduce_zero_label)
    return load_folder(config.data, classes=config.classes, seed=config.seed, scale=config.scale,
                       val_count=config.val_count, mask_labels=mask_labels, progress=show_progress,
                       deadline=deadline)


# ----------------------------------------------------------------- one epoch
def loss_and_gradients(model, images, masks, config: TrainConfig, rng, criterion=pixel_loss):
    """The loss of one batch, as the model computes it (whole images, or sampled windows),
    its gradients added into the weights' .grad.

    criterion: the --loss module (make_loss), with the class weights; pixel_loss by default.
    Each core runs the whole step on its share of the samples where that gives
    the same numbers (data_parallel.py), else loss.backward() does it.
    """
    x = Tensor(images, device=config.device)                     # (B, C, H, W)
    target = backend.to_device(masks, config.device)             # (B, H, W)
    return data_parallel.loss_and_gradients(model, x, target, criterion, rng)


def has_labels(masks: np.ndarray) -> bool:
    """Whether a batch's (host) masks label any pixel: one without gives no loss to learn from."""
    return bool((masks != IGNORE_INDEX).any())


def weights_are_finite(model) -> bool:
    """True if no parameter or buffer holds inf or NaN: one number read back from the device.

    Any inf or NaN makes the sum inf or NaN, so one sum per tensor, added on
    the device, and a single float() answer for the whole model.
    """
    total = 0.0
    for _, tensor in model.named_tensors():
        total = total + tensor.data.sum(dtype=np.float64)       # a 0-d array on the device
    return math.isfinite(float(total))


def check_losses(steps_and_losses: list, model, epoch: int) -> list:
    """The losses as floats, or TrainingError naming the first step (from 1) that diverged."""
    values = []
    for step, loss in steps_and_losses:
        value = float(loss)                                       # a device->host copy
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at step {step + 1} of epoch {epoch + 1}; "
                                f"training stopped and this epoch was not saved. Try a lower --lr.")
        values.append(value)
    if not weights_are_finite(model):
        step = steps_and_losses[-1][0]
        raise TrainingError(f"the weights became inf or nan by step {step + 1} of epoch {epoch + 1}; "
                            f"training stopped and this epoch was not saved. Try a lower --lr.")
    return values


def train_one_epoch(model, loader, optimizer, config: TrainConfig, epoch: int, rng,
                    show_progress: bool = True, deadline: float = math.inf,
                    normalization: dict | None = None, criterion=pixel_loss,
                    gradient_norms=None) -> tuple:
    """One pass over the training data: (mean loss or None if no step had labels, steps run).

    gradient_norms: a GradientNorms (gradient_norms.py) that adds up each
    layer's gradient norm after every backward, or None.

    Stops with TrainingError on a NaN/inf loss or weights, naming the step.
    A batch whose masks label no pixel is skipped before the step (checked on
    the host, no device sync). Stops early (after a whole step) once
    time.perf_counter() passes `deadline`: then fewer than len(loader) steps ran.
    """
    model.train()
    total, count, images_seen, steps = 0.0, 0, 0, 0
    start = time.perf_counter()
    bar = progress(loader, len(loader), f"epoch {epoch + 1}/{config.epochs}", show_progress)
    pending = []                                # (step, loss) not yet read back from the device
    for step, (images, masks) in enumerate(bar):
        if has_labels(masks):
            optimizer.zero_grad()
            loss = loss_and_gradients(model, normalized(images, normalization), masks, config, rng, criterion)
            if gradient_norms is not None:
                gradient_norms.add()              # each layer's ||d loss / d weights||, on the device
            optimizer.step()
            pending.append((step, loss.data))
            images_seen += len(images)
        steps = step + 1
        out_of_time = time.perf_counter() > deadline
        if pending and (len(pending) >= config.check_every or step == len(loader) - 1 or out_of_time):
            values = check_losses(pending, model, epoch)
            pending = []
            total += sum(values)
            count += len(values)
            if hasattr(bar, "set_postfix"):
                rate = images_seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{optimizer.lr:.3g}", img_s=f"{rate:.1f}")
        if out_of_time:
            break
    return (total / count if count else None), steps


def check_validation(metrics: dict, epoch: int) -> None:
    """TrainingError unless the validation loss is finite: a model whose outputs overflow is broken.

    The weights may all be finite while the logits are not (a huge --lr makes
    them large enough to overflow float32 in a forward pass); nothing of such
    an epoch is saved, so best.npz only ever comes from a finite validation.
    """
    if not math.isfinite(metrics["loss"]):
        raise TrainingError(f"the validation loss became {metrics['loss']} after epoch {epoch + 1}: "
                            f"the model's outputs overflow; training stopped and epoch {epoch + 1} "
                            f"was not saved. Try a lower --lr.")


# ----------------------------------------------------------------- the whole run
def fit(config: TrainConfig, resume: bool = False, show_progress: bool = True, log=print,
        overwrite: bool = False) -> dict:
    """Train as `config` says, writing checkpoints and pictures under config.out.

    resume: continue from OUT/last.npz. overwrite: replace a run already in
    OUT (without either, a folder that holds one is refused). `config` is
    read, never changed: the run keeps its own copy (TrainingRun.config).
    Returns the final validation metrics (with the class names under "class_names").
    """
    deadline = time.perf_counter() + config.time_budget if config.time_budget > 0 else math.inf
    check_config(config)
    config = ready_to_train(config)
    backend.check_device(config.device)
    prepare_out(config.out, resume, overwrite, log)
    last_path = os.path.join(config.out, "last.npz")
    best_path = os.path.join(config.out, "best.npz")
    if resume:                                  # refuse changed settings before reading any data
        arrays, meta = load_checkpoint(last_path)
        changes = resume_changes(meta.get("train_config", {}), config, last_path)
    train_set, val_set = build_datasets(config, show_progress, deadline)
    check_sets(train_set, val_set, config)
    if overwrite and not resume:
        remove_run(config.out)

    run = TrainingRun(config, train_set)        # model, optimizer, schedule, RNG, normalisation...
    if resume:
        run.load_state_dict(arrays, meta, log)  # ... as the checkpoint left them
        log(f"resumed from {last_path} after epoch {run.epoch}" + "".join(
            f"; {name} {stored!r} -> {given!r}" for name, stored, given in changes))
    if run.class_weights is not None:
        log("class weights (--class-weights " + config.class_weights + "):\n" + format_class_weights(
            train_set.class_names, run.class_weights, train_set.class_pixel_counts()))
    criterion = make_loss(config.loss, run.class_weights, IGNORE_INDEX, gamma=config.focal_gamma)
    criterion = criterion.to(config.device)
    gradient_norms = GradientNorms(run.model)     # per layer, averaged over each epoch: history.png
    loader = make_loader(train_set, config, drop_last=short_last_batch(run.model, train_set, config, log))
    n_params = sum(p.size for p in run.model.parameters())
    log(f"{config.model}: {n_params:,} parameters, {len(train_set)} training / {len(val_set)} "
        f"validation images of {train_set.in_channels} channels, {train_set.num_classes} classes, "
        f"on {config.device}")
    start_epoch = run.epoch
    if start_epoch >= config.epochs:
        log(f"nothing left to train: {last_path} is at epoch {start_epoch} and --epochs is "
            f"{config.epochs} (ask for more epochs to go on)")

    predictor = Predictor(run.model, run.normalization, config.device)   # validation labels as predict's
    metrics = None
    for epoch in range(start_epoch, config.epochs):
        if time.perf_counter() > deadline:
            log(f"time budget of {config.time_budget:g} s spent after {epoch} epochs: skipped "
                f"{epoch_range(epoch, config.epochs)}")
            break
        started = time.perf_counter()
        loader.set_epoch(epoch)
        lr = run.optimizer.lr                     # this epoch's rate
        try:
            train_loss, steps = train_one_epoch(run.model, loader, run.optimizer, config, epoch, run.rng,
                                                show_progress, deadline, run.normalization, criterion,
                                                gradient_norms)
        finally:
            share_processes.end()               # the step's worker processes and their memory go
        if steps < len(loader):
            log(f"time budget of {config.time_budget:g} s spent during epoch {epoch + 1}, after "
                f"{steps} of {len(loader)} steps: skipped the rest of it"
                + (f" and {epoch_range(epoch + 1, config.epochs)}" if epoch + 1 < config.epochs else "")
                + "; validating what was learnt")
        if run.scheduler is not None:
            run.scheduler.step()                  # the next epoch's rate, saved with this epoch
        seconds = time.perf_counter() - started
        metrics = evaluate(predictor, val_set, show_progress, keep=PICTURE_COUNT)
        check_validation(metrics, epoch)
        run.history.append(history_row(epoch, train_loss, metrics, seconds, lr,
                                       gradient_norms.epoch_means()))
        log(f"epoch {epoch + 1:3d}/{config.epochs}  lr {lr:.3g}  train loss {format_loss(train_loss)}  "
            f"val loss "
            f"{metrics['loss']:.4f}  val mIoU {metrics['mean_iou']:.4f}  pixel acc "
            f"{metrics['pixel_accuracy']:.4f}  ({seconds:.1f} s, {len(train_set) / seconds:.1f} img/s)")
        improved = metrics["mean_iou"] > run.best_miou
        run.best_miou = max(run.best_miou, metrics["mean_iou"])
        run.epoch = epoch + 1
        if improved:                    # best first: a kill before last.npz replays this epoch
            run.save(best_path)
        run.save(last_path)
        write_history(config.out, run.history)
        if steps < len(loader):
            break

    if metrics is None:
        if start_epoch < config.epochs:
            raise TrainingError(f"the time budget (--time-budget {config.time_budget:g}) was spent "
                                f"before the first epoch began, reading and checking the data; "
                                f"nothing was trained. Raise --time-budget")
        metrics = evaluate(predictor, val_set, show_progress, keep=PICTURE_COUNT)   # resumed at the end
    write_pictures(config.out, metrics.pop("examples"), run.history, val_set.class_names, log)
    log("\n" + format_table(metrics, val_set.class_names))
    log(f"\nwrote {config.out}/: {', '.join(run_file_names(config.out))}")
    metrics["class_names"] = val_set.class_names
    return metrics


def epoch_range(first: int, epochs: int) -> str:
    """"epoch 4" or "epochs 4-10" (counting from 1) for epochs first .. epochs-1 (from 0)."""
    return f"epoch {first + 1}" if first + 1 == epochs else f"epochs {first + 1}-{epochs}"


def check_sets(train_set, val_set, config: TrainConfig) -> None:
    """Refuse data that cannot train or be scored, before any work, naming what to change."""
    if len(train_set) == 0:
        raise ValueError("there are no training images (check --data and --val-count)")
    if len(val_set) == 0:
        raise ValueError("there are no validation images: the best checkpoint is chosen on them "
                         "(check --data and --val-count)")
    for name, dataset, why in (("training", train_set, "there is nothing to learn from"),
                               ("validation", val_set, "but the best checkpoint is chosen on them")):
        if dataset.class_pixel_counts().sum() == 0:
            scaled = f" at --scale {config.scale:g}" if config.scale != 1 else ""
            raise ValueError(f"no {name} mask labels any pixel{scaled} (all are {IGNORE_INDEX}, the "
                             f"ignore label), {why}: label the masks, set aside other images "
                             f"(--val-count, or --seed for another split)"
                             + (", or use a larger --scale" if scaled else ""))


def make_loader(train_set, config: TrainConfig, drop_last: bool = False) -> DataLoader:
    crop = tuple(config.crop) if config.crop else None
    return DataLoader(train_set, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                      augment=config.augment, crop=crop, drop_last=drop_last)


def short_last_batch(model, train_set, config: TrainConfig, log) -> bool:
    """Whether to leave out each epoch's last batch, which batch norm could not train on.

    Batch norm needs more than one value per channel: batch size x the pixels
    of its smallest map (model.smallest_normalized_map) for the smallest
    training example (or the --crop every example is cut to). A full batch
    that falls short is a setting that cannot train: ValueError naming the
    options. A last batch of one image that falls short is left out, as
    common trainers do (drop_last), and the log says so.
    """
    sizes = [tuple(config.crop)] if config.crop else example_sizes(train_set)
    pixels = [model.smallest_normalized_map(h, w) for h, w in sizes]
    if pixels[0] is None or min(pixels) > 1:
        return False
    height, width = sizes[pixels.index(min(pixels))]
    if config.batch_size == 1:
        raise ValueError(f"--batch-size 1 with batch norm: a {height}x{width} training "
                         f"{'crop' if config.crop else 'image'} leaves one value per channel in the "
                         f"model's smallest map, and batch norm needs more; raise --batch-size, use a "
                         f"larger --crop (or --scale), or train with --no-batch-norm")
    if len(train_set) % config.batch_size == 1:
        log(f"note: each epoch's last batch would hold one image, too few values for batch norm; "
            f"it is left out ({len(train_set)} images in batches of {config.batch_size})")
        return True
    return False


def example_sizes(dataset) -> list:
    """The (H, W) of every example of a dataset, from what it already knows (no file is read)."""
    if hasattr(dataset, "records"):                                    # a FolderDataset: the scan's sizes
        return [tuple(record.size) for record in dataset.records]
    return [tuple(image.shape[1:]) for image in dataset.images]       # in memory


def history_row(epoch: int, train_loss, metrics: dict, seconds: float, lr: float,
                grad_norms: dict | None = None) -> dict:
    """One epoch's row of history.json / history.csv; grad_norms {layer: mean norm} add grad_norm/LAYER."""
    row = dict(epoch=epoch + 1, lr=lr, train_loss=None if train_loss is None else round(train_loss, 6),
               val_loss=round(metrics["loss"], 6), val_miou=round(metrics["mean_iou"], 6),
               val_pixel_acc=round(metrics["pixel_accuracy"], 6), seconds=round(seconds, 2))
    row.update({f"grad_norm/{layer}": norm for layer, norm in (grad_norms or {}).items()})
    return row


def format_loss(loss) -> str:
    return "  none" if loss is None else f"{loss:.4f}"      # none: no batch had a labelled pixel
