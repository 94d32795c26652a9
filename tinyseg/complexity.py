"""What a model costs: parameters, multiply-accumulates, activation memory, receptive field.

`python -m tinyseg complexity` prints, for one image size, a table of the
naive sliding window, its to_fcn() rewrite, the FCN and the U-Net:

    parameters        sum of p.size over model.parameters()
    MACs per forward  multiply-accumulates of one forward pass on one image
    activations       bytes the autograd graph holds after that forward pass:
                      what a training step must keep alive until backward
    receptive field   how many input rows x columns one output pixel can see

Nothing here is a formula typed in by hand for each model. Every number is
measured on the model object itself, so it stays true when a model changes:

- MACs and activations come from running forward() once and walking the
  autograd graph it leaves behind (autograd.topological_order). Every node
  names its operation (`.op`) and its parents, which is all it takes:

      conv2d            out.size * (C_in * kh * kw)     each output sums C_in*kh*kw products
      conv_transpose2d  in.size * (C_out * kh * kw)     each input paints a C_out x kh x kw patch
      linear, matmul    out.size * in_features          each output sums in_features products

  Only these multiply-accumulate layers are counted. ReLU, pooling, batch
  norm, padding, cat and the other elementwise operations cost a few
  operations per value, far fewer than a convolution's C_in*kh*kw, and
  count as 0 MACs.

- The receptive field is measured, not derived: perturb input pixels and
  see whether the centre output pixel changes (see `receptive_field`).

The seed document's count. The document this project grew from estimated
the parameters of a full-resolution network by counting each layer as if
every output pixel had its own weights to every input channel at its
position: H * W * C_in * C_out per layer. For a 1000 x 2000 image and 10
layers of width 4 with 5 classes that is 320,000,041 parameters
(`dense_parameter_count`). A convolution shares one small kernel across all
positions, so the real network has 1,321: the image size does not enter the
parameter count at all. What full resolution really costs is compute and
activation memory, and those the report shows.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np

from tinyseg import autograd, backend
from tinyseg.autograd import no_grad
from tinyseg.models import FCN, SlidingWindow, UNet
from tinyseg.nn.conv import Conv2d, ConvTranspose2d
from tinyseg.nn.layers import BatchNorm2d, Linear, MaxPool2d
from tinyseg.tensor import Tensor

MIB = 2 ** 20
SEED_EXAMPLE = {"height": 1000, "width": 2000, "layers": 10, "channel_width": 4,
                "num_classes": 5, "in_channels": 3}


# ----------------------------------------------------------------- parameters
def count_parameters(model) -> int:
    """Trained numbers in the model: sum of p.size over model.parameters()."""
    return sum(p.size for p in model.parameters())


def dense_parameter_count(height: int, width: int, layers: int, channel_width: int,
                          num_classes: int, in_channels: int = 3) -> int:
    """The seed document's count: every pixel of every layer with weights of its own.

    Its rule, reproduced to match its published number: a layer from C_in to
    C_out channels on an H x W image has H * W * C_in * C_out weights (each
    output pixel connected to every input channel at the same position, no
    weight shared between positions) and C_out biases. The layers run
    in_channels -> channel_width -> ... -> channel_width -> num_classes:

        H*W * (C_in*D + (layers - 2)*D*D + D*K)  +  (layers - 1)*D + K

    1000 x 2000, 10 layers, D = 4, K = 5, RGB input:
    2,000,000 * (12 + 128 + 20) + 36 + 5 = 320,000,041.

    (The number alone does not pin the rule down: layers * (H*W*D*D + D) + 1
    gives it too. This reading is the one in which every term is a weight or
    a bias of an RGB-in, classes-out network.)

    The true count of a convolution does not depend on H and W: a 3x3 layer
    has 9 * C_in * C_out + C_out parameters whatever the image size.
    """
    if layers < 2:
        raise ValueError(f"dense_parameter_count: layers must be >= 2 (an input and an output "
                         f"layer), got {layers}")
    d, k = channel_width, num_classes
    weights_per_pixel = in_channels * d + (layers - 2) * d * d + d * k
    biases = (layers - 1) * d + k
    return height * width * weights_per_pixel + biases


# ----------------------------------------------------------------- walking the graph
def multiply_accumulates(node: Tensor) -> int:
    """MACs of the one operation that made `node` (0 for anything but conv, linear, matmul)."""
    if node.op == "conv2d":                       # parents: x, weight (O, C, kh, kw)[, bias]
        c, kh, kw = node.parents[1].shape[1:]
        return node.size * c * kh * kw
    if node.op == "conv_transpose2d":             # parents: x, weight (C_in, C_out, kh, kw)[, bias]
        x, weight = node.parents[:2]
        c_out, kh, kw = weight.shape[1:]
        return x.size * c_out * kh * kw
    if node.op == "linear":                       # parents: x (B, in), weight (out, in)[, bias]
        return node.size * node.parents[1].shape[1]
    if node.op == "matmul":                       # (..., n, k) @ (..., k, m) -> (..., n, m)
        return node.size * node.parents[0].shape[-1]
    return 0


def count_macs(output: Tensor) -> int:
    """Multiply-accumulates of every operation in the graph that ends at `output`."""
    return sum(multiply_accumulates(node) for node in autograd.topological_order(output))


def storage(array):
    """The array that owns `array`'s memory (a reshape or a crop is a view of another one)."""
    while isinstance(array.base, type(array)):
        array = array.base
    return array


def activation_bytes(output: Tensor) -> int:
    """Bytes of every intermediate result the graph ending at `output` holds.

    Each node made by an operation keeps its `.data` for as long as the graph
    lives, and backward needs the graph: this is the memory a training step
    holds between forward and backward. Parameters (leaves) are not counted,
    nor is the input or anything computed from it alone (the to_fcn() form's
    padded input): they need no gradient, so they are not in the graph. The
    output is counted. A view (a reshape, a crop) shares its parent's memory
    and is counted once.

    An estimate from above of what backward truly needs (it never reads a
    convolution's output once ReLU has copied it) and from below of the peak
    (the convolutions' column buffers are transient and not counted, nor the
    few arrays an operator's backward closure keeps besides its output).
    """
    owners = {}
    for node in autograd.topological_order(output):
        if node.parents:                          # made by an operation, not a leaf
            owner = storage(node.data)
            owners[id(owner)] = owner.nbytes
    return sum(owners.values())


def trace(forward, x: Tensor) -> tuple:
    """(MACs, activation bytes) of forward(x), measured on the graph it builds."""
    if not autograd.is_grad_enabled():
        raise RuntimeError("complexity: the graph is needed to count; call outside no_grad()")
    output = forward(x)
    return count_macs(output), activation_bytes(output)


def blank_input(model, shape: tuple) -> Tensor:
    """Zeros of `shape` with the model's dtype and device (the counts do not depend on values)."""
    first = next(model.parameters())
    return Tensor(first.xp.zeros(shape, dtype=first.dtype))


def forward_cost(model, size: tuple) -> tuple:
    """(MACs, activation bytes) of model(x) for one (1, C, H, W) image, size = (H, W).

    (For a SlidingWindow this is its O(H * W) forward; `window_cost` is faster.)
    The forward runs in evaluation mode, so that BatchNorm leaves its running
    statistics alone; the graph, and so the cost, is the same as in training.
    """
    was_training = model.training
    model.eval()
    try:
        return trace(model, blank_input(model, (1, model.in_channels) + tuple(size)))
    finally:
        model.train(was_training)


def window_cost(model: SlidingWindow) -> tuple:
    """(MACs, activation bytes) of the naive model's classifier on ONE k x k window.

    SlidingWindow.forward runs this classifier once per pixel, so a whole
    H x W image costs H * W times as much; measuring one window is exact
    and avoids an O(H * W) forward pass.
    """
    k = model.window
    return trace(model.forward_patches, blank_input(model, (1, model.in_channels, k, k)))


# ----------------------------------------------------------------- receptive field
DELTA = 1e100          # the perturbation: far larger than any value the positive twin computes


def positive_twin(model):
    """A float64 copy in which every output depends, increasingly, on every input it sees.

    Every weight becomes 1 and every bias 0; BatchNorm (in evaluation mode)
    becomes y = x / sqrt(1 + eps). On a positive input every value is then
    positive, so ReLU passes everything, and raising any input raises every
    value computed from it, so a max pool passes a large enough rise on too.
    Whether an output depends on an input no longer hinges on the weights.
    """
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        for name, tensor in vars(module).items():
            if not isinstance(tensor, Tensor):
                continue
            if isinstance(module, BatchNorm2d):
                value = 1.0 if name in ("weight", "running_var") else 0.0
            else:
                value = 1.0 if tensor.ndim >= 2 else 0.0     # weights 1, biases 0
            tensor.data = tensor.xp.full(tensor.shape, value, dtype=np.float64)
    return twin


def first_true(predicate, low: int, high: int) -> int:
    """Smallest t in [low, high] with predicate(t), for a predicate False up to some t, then
    True (binary search: log2(high - low) calls); high + 1 if it is never True."""
    high += 1
    while low < high:
        middle = (low + high) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle + 1
    return low


def first_moves(moved_by, count: int, size: int) -> np.ndarray:
    """For each of `count` watched pixels, the smallest t in [0, size) at which it moves.

    moved_by(t) -> (count,) booleans, and a pixel that has moved stays moved
    as t grows. A binary search finds the t at which the first pixel moves;
    the others follow within about one period, so t then steps up one by one.
    """
    t = first_true(lambda t: bool(moved_by(t).any()), 0, size - 1)
    first = np.full(count, -1)
    while (first < 0).any() and t < size:
        first[(first < 0) & moved_by(t)] = t
        t += 1
    return first


def field_extents(twin, size: int, axis: int, period: int):
    """(period,) fields, in input rows (axis 0) or columns (axis 1), of `period` neighbouring
    output pixels, from the output's centre down (or right), on a size x size input.

    None if a field reaches the border: the input is too small to hold it.
    """
    xp = next(twin.parameters()).xp
    image = xp.ones((1, twin.in_channels, size, size), dtype=np.float64)

    def watched(x):
        """The twin's outputs at the watched pixels: (classes, period)."""
        with no_grad():
            y = twin(Tensor(x)).data[0]                              # (classes, OH, OW)
        row, col = y.shape[1] // 2, y.shape[2] // 2
        if axis == 0:
            return y[:, row:row + period, col]
        return y[:, row, col:col + period]

    base = watched(image)
    if not (0 < float(base.min()) and float(base.max()) < 1e80):
        raise ValueError("receptive_field: the positive twin's outputs are not in (0, 1e80); "
                         "the model is too deep for this measurement")

    def moved(lines) -> np.ndarray:
        """Which watched pixels move when DELTA is added to these input rows (or columns)."""
        bumped = image.copy()
        bumped[(slice(None), slice(None)) + (slice(None),) * axis + (lines,)] += DELTA
        return backend.to_numpy((watched(bumped) != base).any(axis=0))

    if moved([0, size - 1]).any():                                   # a field reaches the border
        return None
    top = first_moves(lambda t: moved(slice(0, t + 1)), period, size)             # rows 0..t
    bottom = size - 1 - first_moves(lambda t: moved(slice(size - 1 - t, size)), period, size)
    return bottom - top + 1


def downsampling_period(model) -> tuple:
    """(rows, cols) after which the model repeats itself: the product of all layer strides.

    Shifting the input of a U-Net of depth 3 by 8 pixels shifts its output by
    8 pixels; shifting it by 1 moves the pixels across its pooling grid.
    """
    period = [1, 1]
    for module in model.modules():
        if isinstance(module, (Conv2d, MaxPool2d)):
            period = [period[0] * module.stride[0], period[1] * module.stride[1]]
    return tuple(period)


def receptive_field(model, start_size: int = 32, max_size: int = 4096) -> tuple:
    """(rows, cols): how many input rows and columns one output pixel depends on, measured.

    Input pixel p is in the receptive field of output pixel q when changing p
    changes q. On a positive twin of the model (see `positive_twin`), add a
    huge number to a band of input rows, rows 0 .. t, and see whether the
    output at q moves; the smallest t that moves it is the field's top edge.
    A binary search finds it in log2(size) forward passes, and likewise the
    bottom edge (bands t .. H-1), and the left and right edges with bands of
    columns. If the field reaches the border of the input, the input is too
    small: double it and measure again.

    A U-Net pools on a grid: pixels 0 and 1 of a 2x2 pooling window are not
    in the same place relative to it, and their fields can differ (depth 3:
    92 or 100 rows). We watch every position of one period of the grid
    (`downsampling_period`) at once and report the largest field, the usual
    meaning of "the receptive field of the network".

    Works for any model with an `in_channels` attribute: a chain of layers,
    a U-Net with its skips and upsampling, the naive model.
    """
    twin = positive_twin(model)
    period = downsampling_period(model)
    size = start_size
    while size <= max_size:
        rows = field_extents(twin, size, 0, period[0])
        cols = None if rows is None else field_extents(twin, size, 1, period[1])
        if cols is not None:
            return int(rows.max()), int(cols.max())
        size *= 2
    raise ValueError(f"receptive_field: larger than {max_size} pixels")


def chain_receptive_field(model) -> tuple:
    """(rows, cols) by the chain rule of receptive fields, for a plain chain of layers.

    Walking a chain from the input, each k x k layer widens the field by
    (k - 1) steps of the current jump (the input pixels between two
    neighbouring positions of this layer), and a stride s multiplies the jump:

        r = 1 + sum over layers of (k - 1) * jump,     jump = product of earlier strides

    Four 3x3 convolutions and a 1x1 head: r = 1 + 4 * 2 = 9. Valid for models
    whose layers, in the order they were made, are the order data flows
    through them (FCN, SlidingWindow.to_fcn()); a model that upsamples or
    ends in a Linear layer raises ValueError: use `receptive_field`.
    """
    field, jump = [1, 1], [1, 1]
    for module in model.modules():
        if isinstance(module, (ConvTranspose2d, Linear)):
            raise ValueError(f"chain_receptive_field: {type(model).__name__} has a "
                             f"{type(module).__name__}, so it is not a chain of convolutions; "
                             "use receptive_field(model)")
        if isinstance(module, (Conv2d, MaxPool2d)):
            for axis in (0, 1):
                field[axis] += (module.kernel_size[axis] - 1) * jump[axis]
                jump[axis] *= module.stride[axis]
    return tuple(field)


# ----------------------------------------------------------------- the report
def row(name: str, model, macs: int, activations: int, field: tuple) -> dict:
    """One line of the report's table, as a dict."""
    return {"model": name, "parameters": count_parameters(model), "macs": int(macs),
            "activation_bytes": int(activations), "receptive_field": tuple(field)}


def seed_comparison() -> dict:
    """The seed document's count beside the true one, for its own example network.

    Its 10 layers of width 4 with 5 classes are, as a convolutional network,
    FCN(depth=9): nine 3x3 convolutions and the 1x1 head make ten layers.
    Every layer keeps the image size, so its MACs and activations are
    proportional to H * W: they are measured on a 10 x 20 image and scaled up
    by 10,000 rather than by running the model at 1000 x 2000.
    """
    s = SEED_EXAMPLE
    model = FCN(in_channels=s["in_channels"], num_classes=s["num_classes"],
                width=s["channel_width"], depth=s["layers"] - 1)
    small = (s["height"] // 100, s["width"] // 100)
    macs, activations = forward_cost(model, small)
    return {**s, "dense_count": dense_parameter_count(**s), "parameters": count_parameters(model),
            "macs": macs * 100 * 100, "activation_bytes": activations * 100 * 100}


def report(size=(128, 128), in_channels: int = 3, num_classes: int = 4, fcn_width: int = 32,
           fcn_depth: int = 4, unet_base: int = 16, unet_depth: int = 3, window: int = 15,
           naive_width: int = 16, naive_depth: int = 2) -> dict:
    """The four models' costs on one (H, W) image, batch 1, float32, as a dict.

    rows: one dict per model (model, parameters, macs, activation_bytes,
    receptive_field). For the naive model, MACs and activations are those of
    classifying every pixel's window of the image, H * W times one window:
    a full-image forward, or a training step on all of its pixels.
    to_fcn_mac_ratio: naive MACs / to_fcn() MACs. seed: see seed_comparison.

    Receptive fields depend on kernel sizes, strides and wiring, not on
    channel counts, so they are measured on one-channel-wide copies of the
    models (the tests check that the width does not matter).
    """
    h, w = size
    naive = SlidingWindow(in_channels, num_classes, window=window, width=naive_width, depth=naive_depth)
    fcn = FCN(in_channels, num_classes, width=fcn_width, depth=fcn_depth)
    unet = UNet(in_channels, num_classes, base_channels=unet_base, depth=unet_depth)
    thin_naive = SlidingWindow(in_channels, num_classes, window=window, width=1, depth=naive_depth)
    thin_fcn = FCN(in_channels, num_classes, width=1, depth=fcn_depth)
    thin_unet = UNet(in_channels, num_classes, base_channels=1, depth=unet_depth)

    as_fcn = naive.to_fcn()
    window_macs, window_bytes = window_cost(naive)
    rows = [
        row("naive", naive, h * w * window_macs, h * w * window_bytes, receptive_field(thin_naive)),
        row("naive as FCN", as_fcn, *forward_cost(as_fcn, size), receptive_field(thin_naive.to_fcn())),
        row("FCN", fcn, *forward_cost(fcn, size), receptive_field(thin_fcn)),
        row("U-Net", unet, *forward_cost(unet, size), receptive_field(thin_unet)),
    ]
    return {"size": (h, w), "in_channels": in_channels, "num_classes": num_classes,
            "settings": {"naive": f"window {window}, width {naive_width}, depth {naive_depth}",
                         "naive as FCN": "naive.to_fcn(), same weights",
                         "FCN": f"width {fcn_width}, depth {fcn_depth}",
                         "U-Net": f"base {unet_base}, depth {unet_depth}"},
            "rows": rows, "to_fcn_mac_ratio": rows[0]["macs"] / rows[1]["macs"],
            "window": window, "seed": seed_comparison()}


def format_report(result: dict) -> str:
    """The report as fixed-width text."""
    h, w = result["size"]
    lines = [f"Model costs for one {h} x {w} image ({result['in_channels']} channels, "
             f"{result['num_classes']} classes), batch 1, float32",
             "",
             f"{'model':<14}{'settings':<30}{'parameters':>12}{'GMAC/forward':>13}"
             f"{'activation MiB':>15}{'receptive field':>16}"]
    for r in result["rows"]:
        field = "{} x {}".format(*r["receptive_field"])
        lines.append(f"{r['model']:<14}{result['settings'][r['model']]:<30}{r['parameters']:>12,}"
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
    s = result["seed"]
    lines += [f"Parameters of {s['layers']} layers of width {s['channel_width']}, "
              f"{s['num_classes']} classes, on a {s['height']} x {s['width']} RGB image:",
              f"  the seed document's count (own weights at every pixel) {s['dense_count']:>15,}",
              f"  as convolutions (FCN, nine 3x3 layers and a 1x1 head)  {s['parameters']:>15,}",
              "A convolution shares one small kernel across all positions, so its parameter count",
              f"does not grow with the image; what does is compute and memory: "
              f"{s['macs'] / 1e9:.2f} GMAC and",
              f"{s['activation_bytes'] / MIB:,.0f} MiB of activations per training image."]
    return "\n".join(lines)


# ----------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tinyseg complexity`."""
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
                        help="image height and width")
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=4, help="number of classes")
    parser.add_argument("--width", type=int, default=32, help="FCN channels")
    parser.add_argument("--depth", type=int, default=4, help="FCN 3x3 layers")
    parser.add_argument("--base-channels", type=int, default=16, help="U-Net channels at level 0")
    parser.add_argument("--unet-depth", type=int, default=3, help="U-Net downsamplings")
    parser.add_argument("--window", type=int, default=15, help="naive window size (odd)")
    parser.add_argument("--naive-width", type=int, default=16, help="naive channels")
    parser.add_argument("--naive-depth", type=int, default=2, help="naive 3x3 layers")


def run(args) -> int:
    """Print the report for parsed `args`; returns the exit status."""
    result = report(size=tuple(args.size), in_channels=args.in_channels, num_classes=args.classes,
                    fcn_width=args.width, fcn_depth=args.depth, unet_base=args.base_channels,
                    unet_depth=args.unet_depth, window=args.window, naive_width=args.naive_width,
                    naive_depth=args.naive_depth)
    print(format_report(result))
    return 0
