"""The report of `python -m tinyseg complexity`: four models side by side, and a dense layer.

For one image size it builds the naive sliding window, its to_fcn() rewrite,
the FCN and the U-Net, and measures each (counting.py, receptive_fields.py):

    parameters        sum of p.size over model.parameters()
    MACs per forward  multiply-accumulates of one forward pass on one image
    activations       bytes the autograd graph holds after that forward pass:
                      what a training step must keep alive until backward
    receptive field   how many input rows x columns one output pixel can see

Then it answers a question every full-resolution network raises: why does a
convolution not need weights for every pixel? A dense layer over every
pixel, one in which each output pixel has weights of its own to every input
channel at its position, has H * W * C_in * C_out weights. Ten such layers
of width 4 with 5 classes on a 1000 x 2000 RGB image hold 320,000,041
parameters (`dense_parameter_count`). A convolution shares one small kernel
across all positions, so the same ten layers as convolutions have 1,321:
the image size does not enter the parameter count at all. What full
resolution really costs is compute and activation memory, and those the
report shows.
"""

from __future__ import annotations

from tinyseg.complexity.counting import count_parameters, window_cost
from tinyseg.complexity.sizes import forward_cost_at
from tinyseg.complexity.receptive_fields import receptive_field
from tinyseg.models import FCN, build_model
from tinyseg.models.options import MODEL_DEFAULTS, model_config

MIB = 2 ** 20
DENSE_EXAMPLE = {"height": 1000, "width": 2000, "layers": 10, "channel_width": 4,
                 "num_classes": 5, "in_channels": 3}


def dense_parameter_count(height: int, width: int, layers: int, channel_width: int,
                          num_classes: int, in_channels: int = 3) -> int:
    """Parameters of a network of dense layers over every pixel, no weight shared between pixels.

    A layer from C_in to C_out channels on an H x W image connects each
    output pixel to every input channel at the same position with weights of
    its own: H * W * C_in * C_out weights, and C_out biases. The layers run
    in_channels -> channel_width -> ... -> channel_width -> num_classes:

        H*W * (C_in*D + (layers - 2)*D*D + D*K)  +  (layers - 1)*D + K

    1000 x 2000, 10 layers, D = 4, K = 5, RGB input:
    2,000,000 * (12 + 128 + 20) + 36 + 5 = 320,000,041.

    A convolution's count does not depend on H and W: a 3x3 layer has
    9 * C_in * C_out + C_out parameters whatever the image size.
    """
    if layers < 2:
        raise ValueError(f"dense_parameter_count: layers must be >= 2 (an input and an output "
                         f"layer), got {layers}")
    d, k = channel_width, num_classes
    weights_per_pixel = in_channels * d + (layers - 2) * d * d + d * k
    biases = (layers - 1) * d + k
    return height * width * weights_per_pixel + biases


def dense_layer_comparison() -> dict:
    """DENSE_EXAMPLE counted both ways: dense layers over every pixel, and convolutions.

    Its 10 layers of width 4 with 5 classes are, as a convolutional network,
    FCN(depth=9): nine 3x3 convolutions and the 1x1 head make ten layers.
    Its MACs and activations at 1000 x 2000 are counted from the shapes
    (sizes.forward_cost_at), not by running the model on such an image.
    """
    s = DENSE_EXAMPLE
    model = FCN(in_channels=s["in_channels"], num_classes=s["num_classes"],
                width=s["channel_width"], depth=s["layers"] - 1)
    macs, activations = forward_cost_at(model, (s["height"], s["width"]))
    return {**s, "dense_count": dense_parameter_count(**s), "parameters": count_parameters(model),
            "macs": macs, "activation_bytes": activations}


def row(name: str, model, macs: int, activations: int, field: tuple) -> dict:
    """One line of the report's table, as a dict."""
    return {"model": name, "parameters": count_parameters(model), "macs": int(macs),
            "activation_bytes": int(activations), "receptive_field": tuple(field)}


def report(size=(128, 128), in_channels: int = 3, num_classes: int = 4, **options) -> dict:
    """The four models' costs on one (H, W) image, batch 1, float32, as a dict.

    options: model options by name (depth=2, width=8, naive_depth=1, ...; see
    models/options.py); those not given take the table's defaults, the same
    models `tinyseg train` builds.

    rows: one dict per model (model, parameters, macs, activation_bytes,
    receptive_field). For the naive model, MACs and activations are those of
    classifying every pixel's window of the image, H * W times one window:
    a full-image forward, or a training step on all of its pixels.
    to_fcn_mac_ratio: naive MACs / to_fcn() MACs. dense: see dense_layer_comparison.

    Receptive fields depend on kernel sizes, strides and wiring, not on
    channel counts, so they are measured on one-channel-wide copies of the
    models (the tests check that the width does not matter).
    """
    unknown = sorted(set(options) - set(MODEL_DEFAULTS))
    if unknown:
        raise ValueError(f"report: unknown model options {unknown}; expected some of {sorted(MODEL_DEFAULTS)}")
    settings = {**MODEL_DEFAULTS, **options}
    thin = {**settings, "width": 1, "base_channels": 1}

    def build(model: str, values: dict):
        return build_model(model_config(model, values, in_channels, num_classes))

    h, w = size
    naive, fcn, unet = build("naive", settings), build("fcn", settings), build("unet", settings)
    thin_naive, thin_fcn, thin_unet = build("naive", thin), build("fcn", thin), build("unet", thin)
    as_fcn = naive.to_fcn()
    window_macs, window_bytes = window_cost(naive)
    rows = [
        row("naive", naive, h * w * window_macs, h * w * window_bytes, receptive_field(thin_naive)),
        row("naive as FCN", as_fcn, *forward_cost_at(as_fcn, size), receptive_field(thin_naive.to_fcn())),
        row("FCN", fcn, *forward_cost_at(fcn, size), receptive_field(thin_fcn)),
        row("U-Net", unet, *forward_cost_at(unet, size), receptive_field(thin_unet)),
    ]
    s = settings
    unet_settings = f"base {s['base_channels']}, depth {s['depth']}, {s['down']}"
    return {"size": (h, w), "in_channels": in_channels, "num_classes": num_classes,
            "settings": {"naive": f"window {s['window']}, width {s['width']}, "
                                  f"naive depth {s['naive_depth']}",
                         "naive as FCN": "naive.to_fcn(), same weights",
                         "FCN": f"width {s['width']}, depth {s['depth']}",
                         "U-Net": unet_settings + (", batch norm" if s["batch_norm"] else "")},
            "rows": rows, "to_fcn_mac_ratio": rows[0]["macs"] / rows[1]["macs"],
            "window": s["window"], "dense": dense_layer_comparison()}


def format_report(result: dict) -> str:
    """The report as fixed-width text."""
    h, w = result["size"]
    lines = [f"Model costs for one {h} x {w} image ({result['in_channels']} channels, "
             f"{result['num_classes']} classes), batch 1, float32",
             "",
             f"{'model':<14}{'settings':<36}{'parameters':>12}{'GMAC/forward':>13}"
             f"{'activation MiB':>15}{'receptive field':>16}"]
    for r in result["rows"]:
        field = "{} x {}".format(*r["receptive_field"])
        lines.append(f"{r['model']:<14}{result['settings'][r['model']]:<36}{r['parameters']:>12,}"
                     f"{r['macs'] / 1e9:>13.3f}{r['activation_bytes'] / MIB:>15.1f}{field:>16}")
    k = result["window"]
    lines += ["",
              "MACs: multiply-accumulates of convolutions and linear layers only. Activations: what",
              "the autograd graph holds for backward in a training step on one image. The naive rows",
              "classify every pixel's window (H * W windows).",
              "",
              f"to_fcn(): the same weights in one convolutional pass need "
              f"{result['to_fcn_mac_ratio']:.1f}x fewer MACs: every {k} x {k} window",
              f"recomputes features its neighbours share (each first-layer output up to "
              f"{(k - 2) ** 2} times).",
              ""]
    d = result["dense"]
    lines += [f"Parameters of {d['layers']} layers of width {d['channel_width']}, "
              f"{d['num_classes']} classes, on a {d['height']} x {d['width']} RGB image:",
              f"  as dense layers over every pixel (own weights at each pixel) {d['dense_count']:>15,}",
              f"  as convolutions (FCN, nine 3x3 layers and a 1x1 head)        {d['parameters']:>15,}",
              "A convolution shares one small kernel across all positions, so its parameter count",
              f"does not grow with the image; what does is compute and memory: "
              f"{d['macs'] / 1e9:.2f} GMAC and",
              f"{d['activation_bytes'] / MIB:,.0f} MiB of activations per training image."]
    return "\n".join(lines)
