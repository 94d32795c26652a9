"""The three segmentation models, from naive to U-Net: `from tinyseg import models`.

    base.py             SegmentationModel: predict(), the input check, `config`, and
                        the two hooks a training loop calls (training_loss, inference_model)
    sliding_window.py   "naive": SlidingWindow, a patch classifier run at every pixel
                        (and .to_fcn(), the same weights as one convolutional pass)
    fcn.py              "fcn":   FCN, 3x3 convolutions at full resolution, then 1x1
    unet.py             "unet":  UNet, encoder-decoder with skip connections

Every model maps (N, C, H, W) images to (N, num_classes, H, W) logits with
forward(), to (N, H, W) labels with predict(), and describes itself with a
JSON-ready `config` dict, from which build_model() builds it again. Each
knows how it learns from a batch (`training_loss`) and which form of itself
labels images fastest (`inference_model`), so no caller asks for its name:

    model = UNet(in_channels=3, num_classes=5, base_channels=16, depth=3, seed=1)
    model.config    # {"name": "unet", "in_channels": 3, "num_classes": 5, ...}
    build_model(model.config)   # the same architecture and the same initial weights
    model.training_loss(images, masks, criterion, rng)   # a scalar Tensor to backward()
    model.inference_model()     # the module predict() runs (the naive model: its to_fcn())
"""

from tinyseg.models.base import SegmentationModel
from tinyseg.models.fcn import FCN
from tinyseg.models.sliding_window import SlidingWindow, SlidingWindowFCN, sample_windows
from tinyseg.models.unet import UNet

MODELS = {"naive": SlidingWindow, "fcn": FCN, "unet": UNet}


def build_model(config: dict):
    """A new model from a config dict: {"name": one of MODELS, **constructor arguments}."""
    if "name" not in config:
        raise ValueError(f"build_model: config needs a 'name' (one of {sorted(MODELS)}), got {config!r}")
    name = config["name"]
    if name not in MODELS:
        raise ValueError(f"build_model: unknown model name {name!r}; expected one of {sorted(MODELS)}")
    arguments = {key: value for key, value in config.items() if key != "name"}
    try:
        return MODELS[name](**arguments)
    except TypeError as error:
        raise ValueError(f"build_model: bad arguments for {name!r} in config {config!r}: {error}") from None


__all__ = ["MODELS", "build_model", "SegmentationModel", "SlidingWindow", "SlidingWindowFCN", "sample_windows", "FCN", "UNet"]
