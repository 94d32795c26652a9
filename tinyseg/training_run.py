"""A training run: everything that goes on from one epoch to the next, in one object.

    run = TrainingRun(config, train_set)    # a new model, optimizer and schedule; nothing learnt yet
    run.load_state_dict(arrays, meta)       # or: where a checkpoint left off (--resume)
    ... train an epoch, append its history row, run.epoch += 1 ...
    run.save("runs/unet/last.npz")          # the checkpoint: save_checkpoint(path, *run.state_dict())

What it holds, and why a resumed run needs each of them to end with exactly
the weights of a run that was never interrupted:

    model, optimizer     the weights, and Adam's moments (or SGD's momentum)
    scheduler            where the learning-rate schedule is (--schedule), or None
    rng                  the generator that picks the naive model's training windows
    normalization        the training images' mean and std per channel: the model's inputs
    class_weights        the loss's weight of each class (--class-weights), or None
    history              one row per epoch (history.json): a checkpoint carries its own
    best_miou, epoch     the best validation mIoU so far, and the epochs done

and what the checkpoint says about the data (config, class_names,
mask_labels), so eval and predict read and draw masks as training did.

The checkpoint is one .npz (checkpoint.py): arrays "model.NAME" (the
model's state_dict) and "optim.NAME" (the optimizer's), and a JSON header
with the rest. The batch order and augmentation need no state: the
DataLoader draws them from (seed, epoch).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from tinyseg import optim
from tinyseg.checkpoint import CheckpointError, save_checkpoint, split_prefix
from tinyseg.data.class_weights import class_weights_for
from tinyseg.models import build_model, options
from tinyseg.optim.lr_scheduler import make_schedule
from tinyseg.run_files import resumed_history
from tinyseg.train_config import TrainConfig


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message says where and why."""


class TrainingRun:
    """The state of one training run of `config` on `train_set` (see the module docstring).

    A new run's weights come from config.seed, its normalisation and class
    weights from train_set; load_state_dict replaces all of it with a
    checkpoint's. The config is the run's own: the caller's is not changed.
    """

    def __init__(self, config: TrainConfig, train_set):
        self.config = config
        self.class_names = list(train_set.class_names)
        self.mask_labels = train_set.mask_labels          # how the masks were read (data/mask_labels.py)
        self.model = build_model(model_config(config, train_set.in_channels, train_set.num_classes))
        self.model.to(config.device)
        self.optimizer = make_optimizer(config, list(self.model.parameters()))
        self.scheduler = make_schedule(self.optimizer, config.schedule, config.epochs, config.warmup_epochs)
        self.rng = np.random.default_rng([config.seed, 12345])      # the naive model's windows
        self.normalization = channel_normalization(train_set)
        self.class_weights = class_weights_for(config.class_weights, train_set)
        self.epoch, self.best_miou, self.history = 0, -1.0, []

    def state_dict(self) -> tuple:
        """(arrays, meta): what a checkpoint file holds (save_checkpoint(path, arrays, meta))."""
        arrays = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optim.{k}": v for k, v in self.optimizer.state_dict().items()})
        meta = dict(model_config=self.model.config, train_config=asdict(self.config), epoch=self.epoch,
                    class_names=self.class_names, rng_state=self.rng.bit_generator.state,
                    best_miou=self.best_miou, history=self.history, normalization=self.normalization,
                    lr_scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
                    class_weights=self.class_weights,
                    mask_labels=None if self.mask_labels is None else self.mask_labels.to_json())
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict, log=print) -> None:
        """Go on where a checkpoint (arrays, meta) of this run left off (`--resume`).

        Settings that may change (train_config.py) take this run's values: the
        optimizer gets this run's --lr, --momentum and --weight-decay, and a
        schedule whose settings changed is rebuilt (`log` says so). CheckpointError
        if the checkpoint's model is not this run's.
        """
        saved_model, model = meta.get("model_config", {}), self.model
        differing = sorted(key for key in model.config if key in saved_model
                           and saved_model[key] != model.config[key])
        if differing:
            raise CheckpointError(f"cannot resume the run in {self.config.out!r}: its model has "
                                  + ", ".join(f"{key}={saved_model[key]!r} where this run's has "
                                              f"{model.config[key]!r}" for key in differing))
        model.load_state_dict(split_prefix(arrays, "model."))
        self.optimizer.load_state_dict(split_prefix(arrays, "optim."))
        for name in self.optimizer.hyperparameter_names:              # the new --lr etc. win
            if hasattr(self.config, name):
                setattr(self.optimizer, name, float(getattr(self.config, name)))
        self.rng.bit_generator.state = meta["rng_state"]
        self.epoch, self.best_miou = meta["epoch"], meta["best_miou"]
        self.history = resumed_history(self.config.out, meta, log)    # older checkpoints: history.json
        self.normalization = meta.get("normalization")
        self.class_weights = meta.get("class_weights")
        self.resume_schedule(meta.get("lr_scheduler"), log)

    def resume_schedule(self, state, log) -> None:
        """Continue the schedule where the checkpoint left it; rebuild it if its settings changed.

        A saved state of the same schedule is loaded (the exact rate). Otherwise
        (--schedule, --warmup-epochs or --epochs changed, or an older checkpoint)
        the new schedule is stepped self.epoch times, as if it had run from the start.
        """
        if self.scheduler is None:
            return
        if state is not None:
            try:
                self.scheduler.load_state_dict(state)
                return
            except ValueError:
                pass
        for _ in range(self.epoch):
            self.scheduler.step()
        log(f"note: the learning-rate schedule changed; it goes on from epoch {self.epoch} "
            f"(lr {self.optimizer.lr:.3g})")

    def save(self, path: str) -> None:
        """Write the run's checkpoint to `path` in one atomic step, refusing weights that hold inf or NaN."""
        arrays, meta = self.state_dict()
        bad = [name[len("model."):] for name, value in arrays.items()
               if name.startswith("model.") and not np.isfinite(value).all()]
        if bad:
            raise TrainingError(f"refusing to write {path}: the weights {', '.join(bad[:3])} hold inf "
                                f"or nan after epoch {self.epoch}")
        save_checkpoint(path, arrays, meta)


# ----------------------------------------------------------------- what a run is built from
def model_config(config: TrainConfig, in_channels: int, num_classes: int) -> dict:
    """The build_model() config of the model config.model names (models/options.py builds it)."""
    return dict(options.model_config(config.model, vars(config), in_channels, num_classes),
                seed=config.seed)


def make_optimizer(config: TrainConfig, parameters):
    """The optimizer --optimizer names (train_config.OPTIMIZERS), with --lr and --weight-decay."""
    if config.optimizer == "adam":
        return optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                         weight_decay=config.weight_decay)
    raise ValueError(f"--optimizer must be adam or sgd, got {config.optimizer!r}")


def channel_normalization(train_set) -> dict:
    """{"mean": [...], "std": [...]} per channel of the training images (JSON-ready)."""
    mean, std = train_set.channel_stats()
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
