"""The settings of a training run: what they are, which values make sense, which may change.

    config = TrainConfig(model="fcn", epochs=5, lr=1e-3)
    check_config(config)          # ValueError naming the option: "--lr must be ..."

Every setting is a command-line option of `tinyseg train` with the same name
(`batch_size` is `--batch-size`), so an error names the option the user typed.
All of them are checked before any work starts: a NaN learning rate or a
zero batch size is refused at once, not after the data has been read.

A checkpoint stores the settings it was trained with. Resuming a run
(`--resume`) may change how the rest of the run goes (the learning rate, the
number of epochs, the time budget), but not what the weights mean: the model's
shape, the data, the classes, the image size and the counts are fixed, and
`resume_changes` refuses a run that asks to change them. The loss and the
class weights are fixed too (they decide what was being learned); the
schedule, its warm-up and the epochs may change (the schedule is rebuilt).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from tinyseg.data.augment import POLICIES
from tinyseg.data.class_weights import parse_class_weights
from tinyseg.data.mask_labels import MaskLabels
from tinyseg.models.options import MODEL_DEFAULTS
from tinyseg.nn.loss import LOSSES
from tinyseg.optim.lr_scheduler import SCHEDULES

SHAPES_TRAIN_COUNT = 800          # the built-in data's default sizes
SHAPES_VAL_COUNT = 64


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
    # model shape: the defaults of models/options.py, the table train, tour and complexity share
    base_channels: int = MODEL_DEFAULTS["base_channels"]   # U-Net channels at level 0
    depth: int = MODEL_DEFAULTS["depth"]                   # U-Net levels, or FCN 3x3 layers
    width: int = MODEL_DEFAULTS["width"]                   # FCN / sliding-window channels
    window: int = MODEL_DEFAULTS["window"]                 # sliding-window size (odd)
    naive_depth: int = MODEL_DEFAULTS["naive_depth"]       # sliding-window 3x3 layers
    down: str = MODEL_DEFAULTS["down"]                     # U-Net downsampling: pool | conv
    batch_norm: bool = MODEL_DEFAULTS["batch_norm"]        # U-Net with BatchNorm2d: ~2x faster to train
    windows_per_image: int = MODEL_DEFAULTS["windows_per_image"]   # sliding window: per image per step
    # data
    size: int = 64                    # built-in images are size x size
    train_count: int | None = None    # shapes: 800 training images; folders: every training pair
    val_count: int | None = None      # shapes: 64; folders: this many set aside (default 20%)
    classes: int | None = None        # number of classes (folders: else read from the masks)
    augment: str = "flip"             # none | flip | standard (data/augment.py)
    crop: list | None = None          # [H, W]: train on random crops of this size
    scale: float = 1.0                # folders: resize every image and mask by this factor
    mask_colors: str | None = None    # folders: a name,r,g,b CSV; masks are colour-coded (data/mask_labels.py)
    label_map: str | None = None      # folders: an id,train_id CSV; unlisted ids become 255
    reduce_zero_label: bool = False   # folders: 0 becomes 255 and every other label one less (ADE20K)
    check_every: int = 1              # read the loss (a device->host copy) every this many steps
    time_budget: float = 0.0          # seconds of training (0: no limit); stops mid-epoch when spent
    # loss and learning rate
    loss: str = "ce"                  # ce | dice | ce+dice | focal (nn/loss.py)
    focal_gamma: float = 2.0          # --loss focal only: pixels weighted by (1 - p_t)^gamma
    schedule: str = "none"            # none | step | cosine | poly (optim/lr_scheduler.py), per epoch
    warmup_epochs: int = 0            # epochs of linear warm-up before the schedule
    class_weights: str = "none"       # none | auto (from the training masks) | "1,2,5" (one per class)


# Settings a resumed run may not change: they decide what the saved weights mean.
FIXED_ON_RESUME = ("model", "data", "seed", "batch_size", "optimizer", "base_channels", "depth",
                   "width", "window", "naive_depth", "down", "batch_norm", "size", "train_count",
                   "val_count", "classes", "crop", "scale", "windows_per_image", "loss", "focal_gamma",
                   "class_weights", "mask_colors", "label_map", "reduce_zero_label")


def option(name: str) -> str:
    """The command-line option of a setting: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def check_number(name: str, value, minimum: float, integer: bool, above: bool = False) -> None:
    """ValueError naming the option unless value is finite and >= minimum (> minimum if above)."""
    kind = "an integer" if integer else "a finite number"
    bound = f"> {minimum:g}" if above else f">= {minimum:g}"
    wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if not wrong_type and integer and value != int(value):
        wrong_type = True
    if (wrong_type or not math.isfinite(value) or value < minimum
            or (above and value == minimum)):
        raise ValueError(f"{option(name)} must be {kind} {bound}, got {value!r}")


def check_config(config: TrainConfig) -> None:
    """Refuse a setting that makes no sense (NaN, infinite, zero or negative), naming its option."""
    if not isinstance(config.lr, (int, float)) or not math.isfinite(config.lr) or config.lr <= 0:
        raise ValueError(f"--lr must be a positive finite number, got {config.lr!r}")
    check_number("momentum", config.momentum, 0, integer=False)
    if config.momentum >= 1:
        raise ValueError(f"--momentum must be in [0, 1), got {config.momentum!r}")
    check_number("weight_decay", config.weight_decay, 0, integer=False)
    check_number("time_budget", config.time_budget, 0, integer=False)
    check_number("scale", config.scale, 0, integer=False, above=True)
    check_number("seed", config.seed, 0, integer=True)
    check_number("depth", config.depth, 0, integer=True)
    check_number("naive_depth", config.naive_depth, 0, integer=True)
    for name in ("epochs", "batch_size", "base_channels", "width", "window", "size",
                 "windows_per_image", "check_every"):
        check_number(name, getattr(config, name), 1, integer=True)
    for name in ("train_count", "val_count"):
        if getattr(config, name) is not None:
            check_number(name, getattr(config, name), 1, integer=True)
    if config.classes is not None:
        check_number("classes", config.classes, 2, integer=True)
    check_choice("loss", config.loss, LOSSES)
    check_number("focal_gamma", config.focal_gamma, 0, integer=False)
    check_choice("schedule", config.schedule, SCHEDULES)
    check_choice("augment", augment_policy(config.augment), POLICIES)
    check_number("warmup_epochs", config.warmup_epochs, 0, integer=True)
    if config.warmup_epochs and config.warmup_epochs >= config.epochs:
        raise ValueError(f"--warmup-epochs ({config.warmup_epochs}) must be smaller than --epochs "
                         f"({config.epochs})")
    check_class_weights_text(config.class_weights, config.classes)
    if config.window % 2 == 0:
        raise ValueError(f"--window must be odd (a window centred on its pixel), got {config.window}")
    if config.crop is not None:
        if len(config.crop) != 2:
            raise ValueError(f"--crop takes two sizes, H and W, got {config.crop!r}")
        for size in config.crop:
            check_number("crop", size, 1, integer=True)
    if config.data == "shapes":
        check_shapes_config(config)
        return
    check_data_folder(config.data)
    MaskLabels.from_files(config.mask_colors, config.label_map, config.reduce_zero_label)   # names the option
    if config.train_count is not None:
        raise ValueError("--train-count applies to the built-in shapes data; a folder trains on "
                         f"every training pair it holds (got --train-count {config.train_count})")


def check_choice(name: str, value, choices) -> None:
    """ValueError naming the option unless value is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{option(name)} must be one of {', '.join(choices)}, got {value!r}")


def check_class_weights_text(text, classes: int | None) -> None:
    """--class-weights: none, auto or comma-separated numbers (checked now if --classes is known).

    The count is checked against the data's classes once they are read
    (data/class_weights.py); here only what needs no data.
    """
    if not isinstance(text, str):
        raise ValueError(f"--class-weights must be none, auto or numbers like 1,2,5, got {text!r}")
    if text in ("none", "auto"):
        return
    parse_class_weights(text, classes if classes is not None else len(text.split(",")))


def augment_policy(value) -> str:
    """An augment setting as a policy: old checkpoints stored True/False for "flip"/"none"."""
    if value is True:
        return "flip"
    if value is False:
        return "none"
    return value


def check_data_folder(path: str) -> None:
    if not os.path.isdir(path):
        what = "a file, not a folder" if os.path.exists(path) else "no such folder"
        raise ValueError(f"--data must be 'shapes' or a folder, got {path!r} ({what})")


def check_shapes_config(config: TrainConfig) -> None:
    """The settings that only fit the built-in data, checked against its image size."""
    for name in ("mask_colors", "label_map", "reduce_zero_label"):
        if getattr(config, name):
            raise ValueError(f"{option(name)} reads the masks of an image folder; the built-in shapes "
                             f"data has class indices already (got {option(name)} with --data shapes)")
    if config.scale != 1.0:
        raise ValueError(f"--scale applies to image folders; for the built-in shapes set --size "
                         f"(got --scale {config.scale:g})")
    if config.crop is not None and (config.crop[0] > config.size or config.crop[1] > config.size):
        raise ValueError(f"--crop {config.crop[0]} {config.crop[1]} is larger than the "
                         f"{config.size}x{config.size} images (--size {config.size})")


def with_default_counts(config: TrainConfig) -> TrainConfig:
    """The config with the built-in data's default counts filled in (folders keep theirs)."""
    if config.data != "shapes":
        return config
    changes = dict(train_count=config.train_count or SHAPES_TRAIN_COUNT,
                   val_count=config.val_count or SHAPES_VAL_COUNT)
    return TrainConfig(**{**vars(config), **changes})


def resume_changes(saved: dict, config: TrainConfig, path: str) -> list:
    """[(name, stored, given)] of the settings a resumed run changes; ValueError if any is fixed.

    saved: the train_config a checkpoint holds (settings it lacks have their defaults).
    """
    defaults = TrainConfig()
    changed, refused = [], []
    for field in fields(TrainConfig):
        stored = saved.get(field.name, getattr(defaults, field.name))
        given = getattr(config, field.name)
        if field.name == "augment":
            stored, given = augment_policy(stored), augment_policy(given)
        if isinstance(stored, tuple):
            stored = list(stored)
        if isinstance(given, tuple):
            given = list(given)
        if stored == given or field.name == "out":
            continue
        if field.name in FIXED_ON_RESUME:
            refused.append(f"{option(field.name)} (stored {stored!r}, given {given!r})")
        else:
            changed.append((field.name, stored, given))
    if refused:
        raise ValueError(f"cannot resume from {path!r}: these settings differ from the run it holds: "
                         f"{', '.join(refused)}. Resume with the stored values, or start a new run "
                         f"(another --out, or --overwrite)")
    return changed
