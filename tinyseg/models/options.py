"""The models' options: one table read by `tinyseg train`, `tour`, `complexity` and `graph`.

Each row says what one option means, its default and which models read it,
so `--depth 2` means the same thing whichever command it is given to:

    option            default  read by         meaning
    --base-channels   16       unet            channels at level 0, doubled at each level down
    --depth           3        unet, fcn       U-Net downsampling levels; FCN 3x3 layers
    --down            pool     unet            how the U-Net downsamples: pool or conv
    --no-batch-norm   (on)     unet            U-Net without BatchNorm2d
    --width           32       fcn, naive      channels of every 3x3 convolution
    --window          15       naive           the sliding window's side (odd)
    --naive-depth     2        naive           the sliding window's unpadded 3x3 layers
    --windows-per-image 256    naive           windows it trains on, per image and step

    add_model_arguments(parser)                      # every row as a command-line option
    model_config("fcn", vars(args), in_channels=3, num_classes=4)
    # {"name": "fcn", "in_channels": 3, "num_classes": 4, "width": 32, "depth": 3}

TrainConfig (train_config.py) takes its model defaults from MODEL_DEFAULTS,
so a run and a report with no options describe the same models.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelOption:
    """One model option: --name (or --no-name for a switch that is on by default).

    name: the setting's name (a TrainConfig field, and the parsed argument's dest).
    models: the names of the models that read it (keys of tinyseg.models.MODELS).
    """
    name: str
    default: int | str | bool
    help: str
    models: tuple
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling: base_channels -> --base-channels, batch_norm -> --no-batch-norm."""
        prefix = "--no-" if self.default is True else "--"
        return prefix + self.name.replace("_", "-")


MODEL_OPTIONS = (
    ModelOption("base_channels", 16, "U-Net channels at level 0 (doubled at each level down)",
                ("unet",)),
    ModelOption("depth", 3, "U-Net downsampling levels; FCN 3x3 layers", ("unet", "fcn")),
    ModelOption("down", "pool", "U-Net downsampling: max pooling or strided convolution",
                ("unet",), choices=("pool", "conv")),
    ModelOption("batch_norm", True, "U-Net without BatchNorm2d (the paper's original layout)",
                ("unet",)),
    ModelOption("width", 32, "FCN and sliding-window channels (every 3x3 convolution)",
                ("fcn", "naive")),
    ModelOption("window", 15, "sliding-window size (odd)", ("naive",)),
    ModelOption("naive_depth", 2, "sliding-window unpadded 3x3 layers (each shrinks the window by 2)",
                ("naive",)),
    ModelOption("windows_per_image", 256, "sliding window: windows sampled from each image per "
                "training step (how it trains; not part of its architecture)", ("naive",)),
)

MODEL_DEFAULTS = {option.name: option.default for option in MODEL_OPTIONS}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Every row of MODEL_OPTIONS as an option of `parser`, with its default and help."""
    for option in MODEL_OPTIONS:
        if option.default is True:                   # a switch that is on: --no-NAME turns it off
            parser.add_argument(option.flag, dest=option.name, action="store_false", help=option.help)
        else:
            parser.add_argument(option.flag, type=type(option.default), default=option.default,
                                choices=option.choices, help=option.help)


def model_settings(args) -> dict:
    """{name: value} of every model option in parsed `args` (or any object with those attributes)."""
    return {option.name: getattr(args, option.name) for option in MODEL_OPTIONS}


def model_config(model: str, settings: dict, in_channels: int, num_classes: int) -> dict:
    """The build_model() config of `model` ("naive", "fcn" or "unet") from the options' values.

    settings: {option name: value}, e.g. vars(args) or vars(train_config);
    only the options the model reads (MODEL_OPTIONS' `models`) are used.
    ValueError, naming the option, for a value the model cannot be built with.
    """
    common = dict(in_channels=in_channels, num_classes=num_classes)
    s = settings
    if model == "unet":
        return dict(name="unet", base_channels=s["base_channels"], depth=s["depth"], down=s["down"],
                    batch_norm=s["batch_norm"], **common)
    if model == "fcn":
        if s["depth"] < 1:
            raise ValueError(f"--depth must be >= 1 for the FCN (its 3x3 layers), got {s['depth']}")
        return dict(name="fcn", width=s["width"], depth=s["depth"], **common)
    if model == "naive":
        if s["window"] < 2 * s["naive_depth"] + 1:
            raise ValueError(f"--window must be >= {2 * s['naive_depth'] + 1} for the naive model "
                             f"({s['naive_depth']} unpadded 3x3 convolutions, --naive-depth, fit in "
                             f"it), got {s['window']}")
        return dict(name="naive", window=s["window"], width=s["width"], depth=s["naive_depth"],
                    windows_per_image=s["windows_per_image"], **common)
    raise ValueError(f"--model must be naive, fcn or unet, got {model!r}")
