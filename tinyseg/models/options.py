"""The models' options: one table read by `tinyseg train`, `tour`, `complexity` and `graph`.

Each row (an Option of tinyseg/options.py) says what one option means, its
default, its limits and which models read it, so `--depth 2` means the same
thing whichever command it is given to:

    option              default  read by     meaning
    --base-channels     16       unet        channels at level 0, doubled at each level down
    --depth             3        unet, fcn   U-Net downsampling levels; FCN 3x3 layers
    --down              pool     unet        how the U-Net downsamples: pool or conv
    --no-batch-norm     (on)     unet        U-Net without BatchNorm2d
    --width             32       fcn, naive  channels of every 3x3 convolution
    --window            15       naive       the sliding window's side (odd)
    --naive-depth       2        naive       the sliding window's unpadded 3x3 layers
    --windows-per-image 256      naive       windows it trains on, per image and step

MODEL is the row of --model itself (train and graph take it; tour and
complexity show all three models).

    add_options(parser, MODEL_OPTIONS)        # every row as a command-line option (options.py)
    model_config("fcn", vars(args), in_channels=3, num_classes=4)
    # {"name": "fcn", "in_channels": 3, "num_classes": 4, "width": 32, "depth": 3}

A row checks its own value (--window odd, --depth >= 0); the limits that
depend on the model are check_model_settings' (the FCN needs --depth >= 1).
TrainConfig (train_config.py) takes its model defaults from these rows, so
a run and a report with no options describe the same models.
"""

from __future__ import annotations

from tinyseg.models import MODELS
from tinyseg.models.unet import DOWNSAMPLING
from tinyseg.options import Number, Option, odd_size

AT_LEAST_ONE, AT_LEAST_ZERO = Number(1, integer=True), Number(0, integer=True)

MODEL = Option("model", "unet", "the network: a sliding-window classifier, an FCN or a U-Net", str,
               choices=tuple(MODELS))

MODEL_OPTIONS = (
    Option("base_channels", 16, "U-Net channels at level 0 (doubled at each level down)", int,
           check=AT_LEAST_ONE, models=("unet",)),
    Option("depth", 3, "U-Net downsampling levels; FCN 3x3 layers (at least 1)", int,
           check=AT_LEAST_ZERO, models=("unet", "fcn")),
    Option("down", "pool", "U-Net downsampling: max pooling or strided convolution", str,
           choices=DOWNSAMPLING, models=("unet",)),
    Option("batch_norm", True, "U-Net without BatchNorm2d (the paper's original layout)", bool,
           models=("unet",), shown_default="with batch norm"),
    Option("width", 32, "FCN and sliding-window channels (every 3x3 convolution)", int,
           check=AT_LEAST_ONE, models=("fcn", "naive")),
    Option("window", 15, "sliding-window size (odd)", int, check=odd_size, models=("naive",)),
    Option("naive_depth", 2, "sliding-window unpadded 3x3 layers (each shrinks the window by 2)", int,
           check=AT_LEAST_ZERO, models=("naive",)),
    Option("windows_per_image", 256, "sliding window: windows sampled from each image per training "
           "step (how it trains; not part of its architecture)", int, check=AT_LEAST_ONE,
           models=("naive",)),
)

MODEL_DEFAULTS = {option.name: option.default for option in MODEL_OPTIONS}


def model_settings(args) -> dict:
    """{name: value} of every model option in parsed `args` (or any object with those attributes)."""
    return {option.name: getattr(args, option.name) for option in MODEL_OPTIONS}


def check_model_settings(model: str, settings: dict) -> None:
    """ValueError, naming the option, for a value `model` cannot be built with.

    settings: {option name: value}; each value already passed its own row's
    check (check_options), so only the limits that depend on the model are here.
    """
    s = settings
    if model == "fcn" and s["depth"] < 1:
        raise ValueError(f"--depth must be >= 1 for the FCN (its 3x3 layers), got {s['depth']}")
    if model == "naive" and s["window"] < 2 * s["naive_depth"] + 1:
        raise ValueError(f"--window must be >= {2 * s['naive_depth'] + 1} for the naive model "
                         f"({s['naive_depth']} unpadded 3x3 convolutions, --naive-depth, fit in "
                         f"it), got {s['window']}")


def model_config(model: str, settings: dict, in_channels: int, num_classes: int) -> dict:
    """The build_model() config of `model` ("naive", "fcn" or "unet") from the options' values.

    settings: {option name: value}, e.g. vars(args) or vars(train_config);
    only the options the model reads (MODEL_OPTIONS' `models`) are used.
    ValueError, naming the option, for a value the model cannot be built with.
    """
    check_model_settings(model, settings)
    common = dict(in_channels=in_channels, num_classes=num_classes)
    s = settings
    if model == "unet":
        return dict(name="unet", base_channels=s["base_channels"], depth=s["depth"], down=s["down"],
                    batch_norm=s["batch_norm"], **common)
    if model == "fcn":
        return dict(name="fcn", width=s["width"], depth=s["depth"], **common)
    if model == "naive":
        return dict(name="naive", window=s["window"], width=s["width"], depth=s["naive_depth"],
                    windows_per_image=s["windows_per_image"], **common)
    raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
