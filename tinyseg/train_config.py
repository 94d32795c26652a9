"""The settings of a training run: one table of what they are, which values make sense, which may change.

    config = TrainConfig(model="fcn", epochs=5, lr=1e-3)
    check_config(config)          # ValueError naming the option: "--lr must be ..."

Every setting is a row of TRAIN_OPTIONS (an Option, tinyseg/options.py) and
a field of TrainConfig with the same name and default; on the command line
it is the option of the same name (`batch_size` is `--batch-size`), so an
error names the option the user typed. A row holds everything about its
setting, and the rest is read from the rows:

    row                                            read by
    type, default, help, choices, nargs, metavar   add_options: `tinyseg train`'s arguments and --help
    check (its own value), choices                 check_config, before any work starts
    on_resume: "fixed" or "may change"             resume_changes, and the --resume help

    Option("lr", 2e-3, "learning rate", float, check=Number(0, above=True), on_resume="may change")

The choices come from the tables of the code that owns them: the models
(tinyseg.models.MODELS), the devices (backend.DEVICES), the augmentation
policies (data/augment.py), the losses (nn/loss.py), the schedules
(optim/lr_scheduler.py). The models' own rows are models/options.py's,
shared with `tour`, `complexity` and `graph`.

A checkpoint stores the settings it was trained with. Resuming a run
(`--resume`) may change how the rest of the run goes (the learning rate, the
number of epochs, the schedule, the time budget), but not what the weights
mean: a setting whose row says on_resume="fixed" (the model's shape, the
data, the classes, the image size and the counts, the loss and the class
weights) is refused by `resume_changes` if it differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from tinyseg.backend import DEVICES
from tinyseg.data.augment import POLICIES, as_policy
from tinyseg.data.class_weights import parse_class_weights
from tinyseg.data.mask_labels import MaskLabels
from tinyseg.models.options import MODEL, MODEL_OPTIONS, check_model_settings
from tinyseg.nn.loss import LOSSES
from tinyseg.optim.lr_scheduler import SCHEDULES
from tinyseg.options import Number, Option, check_options, two_sizes

SHAPES_TRAIN_COUNT = 800          # the built-in data's default sizes
SHAPES_VAL_COUNT = 64
OPTIMIZERS = ("adam", "sgd")      # training_run.make_optimizer builds them
AT_LEAST_ONE, AT_LEAST_ZERO = Number(1, integer=True), Number(0, integer=True)


def check_data_folder(path: str) -> None:
    if not os.path.isdir(path):
        what = "a file, not a folder" if os.path.exists(path) else "no such folder"
        raise ValueError(f"--data must be 'shapes' or a folder, got {path!r} ({what})")


def check_data(flag: str, value) -> None:
    """--data: the built-in "shapes", or a folder that exists."""
    if value != "shapes":
        check_data_folder(value)


def check_class_weights_text(flag: str, text) -> None:
    """--class-weights: none, auto or comma-separated positive numbers (their count: check_config)."""
    if not isinstance(text, str):
        raise ValueError(f"{flag} must be none, auto or numbers like 1,2,5, got {text!r}")
    if text not in ("none", "auto"):
        parse_class_weights(text, len(text.split(",")))


DATA_OPTIONS = (
    Option("data", "shapes", "'shapes' (built-in synthetic data) or a folder with images/ and masks/ "
           "(or train/ and val/ each holding both)", str, check=check_data),
    Option("size", 64, "built-in data: images are SIZE x SIZE", int, check=AT_LEAST_ONE),
    Option("train_count", None, "built-in data: training images; a folder trains on every training "
           "pair it holds", int, check=AT_LEAST_ONE, shown_default=str(SHAPES_TRAIN_COUNT)),
    Option("val_count", None, "validation images: a folder of images/ and masks/ sets this many aside, "
           "a folder with train/ and val/ uses val/", int, check=AT_LEAST_ONE,
           shown_default=f"{SHAPES_VAL_COUNT} built-in, 20% of a folder"),
    Option("classes", None, "number of classes", int, check=Number(2, integer=True),
           shown_default="4 built-in; a folder's masks, --mask-colors or classes.txt"),
    Option("crop", None, "train on random H x W crops (validation uses whole images)", int,
           check=two_sizes, nargs=2, metavar=("H", "W"), shown_default="whole images"),
    Option("scale", 1.0, "folders: resize images and masks by this factor when read (e.g. 0.5)", float,
           check=Number(0, above=True)),
    Option("mask_colors", None, "folders: the masks are colour pictures; FILE is a CSV of name,r,g,b "
           "(CamVid's class_dict.csv), class i the colour of row i", str, metavar="FILE",
           shown_default="masks of class indices"),
    Option("label_map", None, "folders: a CSV of id,train_id lines (e.g. Cityscapes ids to train ids); "
           "ids it does not list become 255 (ignore)", str, metavar="FILE", shown_default="none"),
    Option("reduce_zero_label", False, "folders: label 0 becomes 255 (ignore) and every other label "
           "one less (ADE20K's masks)", bool),
    Option("augment", "flip", "none; flip: random left-right and up-down flips; standard: flips, then "
           "quarter turns, scale 0.75-1.25 with a crop back to size, and brightness and contrast, "
           "each on half the examples", str, choices=POLICIES, on_resume="may change"),
)

LEARNING_OPTIONS = (
    Option("epochs", 10, "epochs to train (with --resume: in all, those done included)", int,
           check=AT_LEAST_ONE, on_resume="may change"),
    Option("batch_size", 8, "training images per step", int, check=AT_LEAST_ONE),
    Option("lr", 2e-3, "learning rate", float, check=Number(0, above=True), on_resume="may change"),
    Option("optimizer", "adam", "the update rule", str, choices=OPTIMIZERS),
    Option("momentum", 0.9, "SGD momentum", float, check=Number(0, below=1), on_resume="may change"),
    Option("weight_decay", 0.0, "L2 penalty on the weights, added to their gradients", float,
           check=Number(0), on_resume="may change"),
    Option("loss", "ce", "cross-entropy, soft Dice, their sum, or focal loss", str, choices=LOSSES),
    Option("focal_gamma", 2.0, "--loss focal: weight each pixel's cross-entropy by (1 - p_t)^GAMMA, "
           "so pixels already right count less (0 is cross-entropy)", float, check=Number(0)),
    Option("schedule", "none", "learning-rate schedule, stepped once per epoch", str,
           choices=SCHEDULES, on_resume="may change"),
    Option("warmup_epochs", 0, "epochs of linear learning-rate warm-up before the schedule (fewer "
           "than --epochs)", int, check=AT_LEAST_ZERO, on_resume="may change"),
    Option("class_weights", "none", "none; auto: from the training masks' pixel counts (median "
           "frequency); or one positive number per class, e.g. 1,2,5", str,
           check=check_class_weights_text),
)

RUN_OPTIONS = (
    Option("device", "cpu", "where the model runs (cuda needs CuPy and a GPU)", str, choices=DEVICES,
           on_resume="may change"),
    Option("seed", 0, "seeds the weights, the split, the batches and the augmentation", int,
           check=AT_LEAST_ZERO),
    Option("out", None, "the run's folder: checkpoints, history, pictures", str,
           on_resume="not compared", shown_default="runs/MODEL"),
    Option("check_every", 1, "read the loss back every N steps (fewer GPU syncs)", int,
           check=AT_LEAST_ONE, on_resume="may change"),
    Option("time_budget", 0.0, "stop after this many seconds of the whole command, validating what "
           "was learnt (0: no limit)", float, check=Number(0), on_resume="may change"),
)

MODEL_ROWS = (MODEL,) + MODEL_OPTIONS
TRAIN_OPTIONS = MODEL_ROWS + DATA_OPTIONS + LEARNING_OPTIONS + RUN_OPTIONS
ROWS = {row.name: row for row in TRAIN_OPTIONS}
DEFAULTS = {row.name: row.default for row in TRAIN_OPTIONS}


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in each checkpoint): one field per row of
    TRAIN_OPTIONS, in its order, with its default (the rows say what each one means)."""
    # the model: models/options.py
    model: str = DEFAULTS["model"]
    base_channels: int = DEFAULTS["base_channels"]
    depth: int = DEFAULTS["depth"]
    down: str = DEFAULTS["down"]
    batch_norm: bool = DEFAULTS["batch_norm"]
    width: int = DEFAULTS["width"]
    window: int = DEFAULTS["window"]
    naive_depth: int = DEFAULTS["naive_depth"]
    windows_per_image: int = DEFAULTS["windows_per_image"]
    # the data: DATA_OPTIONS
    data: str = DEFAULTS["data"]
    size: int = DEFAULTS["size"]
    train_count: int | None = DEFAULTS["train_count"]
    val_count: int | None = DEFAULTS["val_count"]
    classes: int | None = DEFAULTS["classes"]
    crop: list | None = DEFAULTS["crop"]
    scale: float = DEFAULTS["scale"]
    mask_colors: str | None = DEFAULTS["mask_colors"]
    label_map: str | None = DEFAULTS["label_map"]
    reduce_zero_label: bool = DEFAULTS["reduce_zero_label"]
    augment: str = DEFAULTS["augment"]
    # how it learns: LEARNING_OPTIONS
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    lr: float = DEFAULTS["lr"]
    optimizer: str = DEFAULTS["optimizer"]
    momentum: float = DEFAULTS["momentum"]
    weight_decay: float = DEFAULTS["weight_decay"]
    loss: str = DEFAULTS["loss"]
    focal_gamma: float = DEFAULTS["focal_gamma"]
    schedule: str = DEFAULTS["schedule"]
    warmup_epochs: int = DEFAULTS["warmup_epochs"]
    class_weights: str = DEFAULTS["class_weights"]
    # the run: RUN_OPTIONS
    device: str = DEFAULTS["device"]
    seed: int = DEFAULTS["seed"]
    out: str | None = DEFAULTS["out"]
    check_every: int = DEFAULTS["check_every"]
    time_budget: float = DEFAULTS["time_budget"]

    def __post_init__(self):
        if self.out is None:                       # the default folder is the model's: runs/unet
            self.out = os.path.join("runs", self.model)


def check_config(config: TrainConfig) -> None:
    """Refuse a setting that makes no sense (NaN, infinite, zero or negative), naming its option.

    Each row checks its own value (check_options); then the limits that
    involve two settings, and what only fits the built-in data or a folder.
    """
    settings = vars(config)
    if isinstance(config.augment, bool):                    # older callers: True/False, "flip"/"none"
        settings = {**settings, "augment": as_policy(config.augment)}
    check_options(settings, TRAIN_OPTIONS)
    check_model_settings(config.model, settings)            # the FCN's depth, the naive window
    if config.warmup_epochs and config.warmup_epochs >= config.epochs:
        raise ValueError(f"--warmup-epochs ({config.warmup_epochs}) must be smaller than --epochs "
                         f"({config.epochs})")
    if config.classes is not None and config.class_weights not in ("none", "auto"):
        parse_class_weights(config.class_weights, config.classes)       # one weight per class
    if config.data == "shapes":
        check_shapes_config(config)
        return
    MaskLabels.from_files(config.mask_colors, config.label_map, config.reduce_zero_label)   # names the option
    if config.train_count is not None:
        raise ValueError("--train-count applies to the built-in shapes data; a folder trains on "
                         f"every training pair it holds (got --train-count {config.train_count})")


def check_shapes_config(config: TrainConfig) -> None:
    """The settings that only fit the built-in data, checked against its image size."""
    for name in ("mask_colors", "label_map", "reduce_zero_label"):
        if getattr(config, name):
            flag = ROWS[name].flag
            raise ValueError(f"{flag} reads the masks of an image folder; the built-in shapes "
                             f"data has class indices already (got {flag} with --data shapes)")
    if config.scale != 1.0:
        raise ValueError(f"--scale applies to image folders; for the built-in shapes set --size "
                         f"(got --scale {config.scale:g})")
    if config.crop is not None and (config.crop[0] > config.size or config.crop[1] > config.size):
        raise ValueError(f"--crop {config.crop[0]} {config.crop[1]} is larger than the "
                         f"{config.size}x{config.size} images (--size {config.size})")


def ready_to_train(config: TrainConfig) -> TrainConfig:
    """A copy of `config` as a run stores it: the built-in data's counts filled in, augment a policy.

    The caller's config is left as it was.
    """
    counts = {}
    if config.data == "shapes":
        counts = dict(train_count=config.train_count or SHAPES_TRAIN_COUNT,
                      val_count=config.val_count or SHAPES_VAL_COUNT)
    return replace(config, augment=as_policy(config.augment), **counts)


def resume_changes(saved: dict, config: TrainConfig, path: str) -> list:
    """[(name, stored, given)] of the settings a resumed run changes; ValueError if any is fixed.

    saved: the train_config a checkpoint holds (settings it lacks have their defaults).
    Which settings may change is each row's on_resume.
    """
    changed, refused = [], []
    for row in TRAIN_OPTIONS:
        stored = comparable(row.name, saved.get(row.name, row.default))
        given = comparable(row.name, getattr(config, row.name))
        if stored == given or row.on_resume == "not compared":
            continue
        if row.on_resume == "fixed":
            refused.append(f"{row.flag} (stored {stored!r}, given {given!r})")
        else:
            changed.append((row.name, stored, given))
    if refused:
        raise ValueError(f"cannot resume from {path!r}: these settings differ from the run it holds: "
                         f"{', '.join(refused)}. Resume with the stored values, or start a new run "
                         f"(another --out, or --overwrite)")
    return changed


def comparable(name: str, value):
    """A stored or given setting in one form: a policy for augment (old checkpoints stored True or
    False), a list for a tuple (--crop)."""
    if name == "augment":
        value = as_policy(value)
    return list(value) if isinstance(value, tuple) else value
