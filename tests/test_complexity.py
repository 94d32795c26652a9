"""The complexity report: every count checked against a number worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tinyseg import Tensor, autograd, cat, complexity, no_grad, nn
from tinyseg import functional as F
from tinyseg.complexity import (
    activation_bytes, chain_receptive_field, count_macs, count_parameters,
    dense_parameter_count, forward_cost, receptive_field, trace, window_cost,
)
from tinyseg.complexity.counting import ResultArrays, weak_reference
from tinyseg.models import FCN, SlidingWindow, UNet, build_model

FLOAT32 = 4  # bytes


def zeros(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype=dtype))


# ----------------------------------------------------------------- a dense layer over every pixel
def test_dense_count_of_the_example_network():
    assert dense_parameter_count(1000, 2000, layers=10, channel_width=4, num_classes=5) == 320_000_041


def test_dense_count_on_a_small_case_by_hand():
    # 2 x 3 image, 1 -> 2 -> 4 channels: per pixel 1*2 + 2*4 = 10 weights, biases 2 + 4.
    assert dense_parameter_count(2, 3, layers=2, channel_width=2, num_classes=4, in_channels=1) == 6 * 10 + 6
    # Twice the pixels, twice the weights: the dense count grows with the image...
    assert (dense_parameter_count(4, 3, 2, 2, 4, 1) - 6) == 2 * (dense_parameter_count(2, 3, 2, 2, 4, 1) - 6)


def test_a_convolution_does_not_grow_with_the_image():
    # ...a convolution's does not: 3*4*9 + 4, 8 x (4*4*9 + 4), then 4*5 + 5.
    dense = complexity.dense_layer_comparison()
    assert dense["parameters"] == 112 + 8 * 148 + 25 == 1321
    assert dense["dense_count"] == 320_000_041
    # Per pixel: 3*9*4 + 8 * (4*9*4) + 4*5 = 1280 MACs, and the graph keeps 9 ReLU outputs of
    # 4 channels + 5 logits (each convolution's output is freed once its ReLU has read it).
    assert dense["macs"] == 1000 * 2000 * 1280
    assert dense["activation_bytes"] == 1000 * 2000 * (9 * 4 + 5) * FLOAT32


# ----------------------------------------------------------------- parameters
def unet_parameters(in_channels, num_classes, base, depth):
    """The U-Net's count from its docstring's drawing: double convs, 2x2 up-convs, 1x1 head."""
    def double_conv(c_in, c_out):
        return 9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out
    widths = [base * 2 ** level for level in range(depth + 1)]
    total, c_in = 0, in_channels
    for level in range(depth):
        total += double_conv(c_in, widths[level])
        c_in = widths[level]
    total += double_conv(c_in, widths[depth])
    for level in range(depth):
        total += 4 * widths[level + 1] * widths[level] + widths[level]   # ConvTranspose2d(2w, w, 2)
        total += double_conv(2 * widths[level], widths[level])
    return total + widths[0] * num_classes + num_classes


def test_unet_formula_matches_the_classic_count():
    assert unet_parameters(1, 2, 64, 4) == 31_030_658


@pytest.mark.parametrize("model, expected", [
    (FCN(3, 4, width=32, depth=4), 3 * 32 * 9 + 32 + 3 * (32 * 32 * 9 + 32) + 32 * 4 + 4),
    (SlidingWindow(3, 4, window=15, width=16, depth=2),
     3 * 16 * 9 + 16 + 16 * 16 * 9 + 16 + 16 * 11 * 11 * 4 + 4),
    (UNet(3, 4, base_channels=16, depth=3), unet_parameters(3, 4, 16, 3)),
], ids=["fcn", "naive", "unet"])
def test_parameter_counts_by_hand(model, expected):
    assert count_parameters(model) == expected
    assert count_parameters(build_model(model.config)) == expected


def test_to_fcn_has_the_same_parameters():
    naive = SlidingWindow(2, 3, window=7, width=3, depth=2)
    assert count_parameters(naive.to_fcn()) == count_parameters(naive) == 2 * 3 * 9 + 3 + 3 * 3 * 9 + 3 + 3 * 9 * 3 + 3


# ----------------------------------------------------------------- multiply-accumulates
def test_macs_of_single_layers():
    x = zeros(1, 3, 10, 12)
    assert trace(nn.Conv2d(3, 8, 3, padding=1), x)[0] == (8 * 10 * 12) * (3 * 3 * 3)
    assert trace(nn.Conv2d(3, 8, 3, stride=2, padding=1), x)[0] == (8 * 5 * 6) * (3 * 3 * 3)
    assert trace(nn.Conv2d(3, 8, 3, stride=2, padding=1).forward_relu, x)[0] == (8 * 5 * 6) * (3 * 3 * 3)
    # Each of the 4 x 5 x 6 input values paints a 2 x 2 patch of 2 output channels.
    assert trace(nn.ConvTranspose2d(4, 2, 2, stride=2), zeros(1, 4, 5, 6))[0] == (4 * 5 * 6) * (2 * 2 * 2)
    assert trace(nn.Linear(400, 2), zeros(3, 400))[0] == 3 * 2 * 400
    weight = nn.Parameter(np.ones((3, 4), dtype=np.float32))
    assert count_macs(zeros(2, 3) @ weight) == 2 * 4 * 3


def test_pooling_relu_and_batch_norm_cost_no_macs():
    x = Tensor(np.ones((1, 2, 4, 4), dtype=np.float32), requires_grad=True)
    y = nn.BatchNorm2d(2)(nn.MaxPool2d(2)(x)).relu()
    assert count_macs(y) == 0
    assert count_macs(nn.Conv2d(2, 1, 1)(y)) == 1 * 2 * 2 * 2   # the 1x1 conv after them does count


def graph_of_every_operation() -> Tensor:
    """One scalar made by every operator tinyseg records (all but .to(), which needs two devices)."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((2, 2, 4, 4)), requires_grad=True, dtype=np.float32)
    y = nn.BatchNorm2d(2)(nn.Conv2d(2, 2, 3, padding=1)(x)).relu()            # conv2d, batch_norm, relu
    y = nn.BatchNorm2d(2).forward_relu(nn.Conv2d(2, 2, 1).forward_relu(y))   # conv2d_relu, batch_norm_relu
    y = nn.ConvTranspose2d(2, 2, 2, stride=2)(nn.MaxPool2d(2)(y))            # max_pool2d, conv_transpose2d
    y = cat([F.pad(y, (1, 1, 1, 1))[:, :, 1:5, 1:5], y], axis=1)             # pad, getitem, cat
    y = F.crop_like(F.pad_to_multiple(y, 3), y)                              # pad_to_multiple, crop_like
    flat = y.reshape(2, 64).transpose(1, 0)                                  # reshape, transpose
    z = nn.Linear(2, 3)(flat.transpose(1, 0)[:, :2] @ Tensor(np.eye(2, dtype=np.float32)))  # matmul, linear
    z = ((z + 1) - z * 2) / 3                                                # add, sub, mul, div
    z = (-z) ** 2 + z.exp() + (z * z + 1).log() + z.astype(np.float64).astype(np.float32)
    logits = z.reshape(2, 3, 1, 1)
    labels = np.zeros((2, 1, 1), dtype=np.int64)
    return (F.cross_entropy(logits, labels) + F.dice_loss(logits, labels)
            + F.softmax(logits).sum() + F.log_softmax(logits).sum())


def test_every_recorded_operation_has_a_mac_rule():
    # The lists hold exactly the names the operators record: renaming one (or adding an
    # operator the lists miss) fails here, and count_macs refuses it rather than counting 0.
    loss = graph_of_every_operation()
    recorded = {entry.op for entry in autograd.topological_order(loss)
                if isinstance(entry, autograd.Node)}
    assert recorded == (set(complexity.MAC_OPS) | complexity.NO_MACS) - {"to"}
    assert count_macs(loss) > 0


def test_an_unknown_operation_is_an_error_not_zero_macs():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    y = x.relu()
    y.node.op = "conv2d_renamed"
    with pytest.raises(ValueError, match="'conv2d_renamed'.*MAC_OPS.*NO_MACS"):
        count_macs(y.sum())


def test_macs_of_a_tiny_fcn_by_hand():
    model = FCN(in_channels=2, num_classes=3, width=4, depth=2)
    # per pixel: 2*9*4 (conv 2->4) + 4*9*4 (conv 4->4) + 4*3 (1x1 head) = 228
    assert forward_cost(model, (5, 6))[0] == 5 * 6 * 228


def test_naive_macs_are_pixels_times_one_window():
    model = SlidingWindow(in_channels=2, num_classes=3, window=7, width=3, depth=2)
    # conv 2->3 on 7x7 -> 5x5, conv 3->3 -> 3x3, Linear(3*3*3, 3)
    per_window = 3 * 5 * 5 * (2 * 9) + 3 * 3 * 3 * (3 * 9) + 3 * 27
    assert window_cost(model)[0] == per_window
    full = model(zeros(1, 2, 6, 5))                         # the real forward: 30 windows
    assert count_macs(full) == 6 * 5 * per_window


def to_fcn_macs(h, w, c, k, d, classes):
    """The to_fcn() form of a depth-2 naive model, layer by layer: padded by k // 2, each
    unpadded 3x3 conv shrinks by 2, the k' x k' head (k' = k - 4) brings it back to H x W."""
    k_prime = k - 4
    return ((h + k - 3) * (w + k - 3) * d * c * 9
            + (h + k - 5) * (w + k - 5) * d * d * 9
            + h * w * classes * d * k_prime * k_prime)


def test_to_fcn_ratio_at_128_matches_the_layer_by_layer_count():
    naive = SlidingWindow(in_channels=3, num_classes=4, window=15, width=16, depth=2)
    per_window = 16 * 13 * 13 * 27 + 16 * 11 * 11 * 144 + 4 * 16 * 11 * 11
    assert window_cost(naive)[0] == per_window
    fcn_macs = forward_cost(naive.to_fcn(), (128, 128))[0]
    assert fcn_macs == to_fcn_macs(128, 128, 3, 15, 16, 4)
    ratio = 128 * 128 * per_window / fcn_macs
    assert 32 < ratio < 34                                    # what the speed-up target is held to


# ----------------------------------------------------------------- activation memory
def test_activation_bytes_of_one_convolution_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert trace(conv, zeros(1, 3, 10, 12))[1] == 8 * 10 * 12 * FLOAT32
    assert trace(conv, zeros(2, 3, 10, 12))[1] == 2 * 8 * 10 * 12 * FLOAT32


def test_activation_bytes_count_a_view_once_and_relu_apart():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    with ResultArrays() as results:
        y = conv(zeros(1, 3, 10, 12))
        views, relu = y.reshape(8, 120).transpose(1, 0), y.relu()
    assert activation_bytes(views, results) == 8 * 120 * FLOAT32                       # views
    assert activation_bytes(relu, results) == 2 * 8 * 120 * FLOAT32                   # a new array
    double = nn.Conv2d(3, 8, 3, padding=1, dtype=np.float64)
    assert trace(double, zeros(1, 3, 10, 12, dtype=np.float64))[1] == 8 * 120 * 8


def test_activation_bytes_of_a_tiny_fcn_and_one_window_by_hand():
    fcn = FCN(in_channels=2, num_classes=3, width=4, depth=2)
    # two ReLU outputs of 4 channels (the convolutions' outputs are freed once ReLU has read
    # them: nothing needs them for backward), then 3 logits, at each of 30 pixels
    assert forward_cost(fcn, (5, 6))[1] == 30 * (2 * 4 + 3) * FLOAT32
    naive = SlidingWindow(in_channels=2, num_classes=3, window=7, width=3, depth=2)
    # ReLU outputs of 3 x 5 x 5 and 3 x 3 x 3, flatten (a view of the second), 3 logits
    assert window_cost(naive)[1] == (75 + 27 + 3) * FLOAT32


def test_result_arrays_keep_nothing_alive():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    with ResultArrays() as results:
        loss = nn.Sequential(nn.ReLU())(x * 2.0).sum()            # mul's result: read by no backward
    mul = loss.node.parents[0].parents[0]
    assert results.array(mul) is None and results.array(loss.node) is loss.data
    assert results.operations == [] and results.module_outputs == []
    assert results.array(x) is None                              # a leaf is no recorded result
    assert weak_reference(3) is None                             # a type that takes no weak reference


def test_forward_cost_leaves_batch_norm_statistics_and_mode_alone():
    model = UNet(1, 2, base_channels=2, depth=1, batch_norm=True)
    before = {name: value.copy() for name, value in model.state_dict().items()}
    forward_cost(model, (8, 8))
    assert model.training
    assert all(np.array_equal(before[name], value) for name, value in model.state_dict().items())


def test_counting_needs_the_graph():
    with no_grad(), pytest.raises(RuntimeError, match="no_grad"):
        trace(nn.Conv2d(1, 1, 3), zeros(1, 1, 5, 5))


# ----------------------------------------------------------------- receptive field
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_fcn_field_is_2d_plus_1(depth):
    model = FCN(in_channels=2, num_classes=3, width=2, depth=depth)
    assert receptive_field(model) == chain_receptive_field(model) == (2 * depth + 1, 2 * depth + 1)


@pytest.mark.parametrize("window, depth", [(5, 1), (7, 2), (9, 0)])
def test_sliding_window_field_is_its_window(window, depth):
    model = SlidingWindow(in_channels=1, num_classes=2, window=window, width=2, depth=depth)
    assert receptive_field(model) == (window, window)
    assert receptive_field(model.to_fcn()) == chain_receptive_field(model.to_fcn()) == (window, window)


class Chain(nn.Module):
    """conv (3, 5) -> 2x2 max pool -> conv 3x3: a chain with a stride and a non-square kernel."""

    in_channels = 1

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(1, 2, (3, 5), padding=(1, 2))
        self.pool = nn.MaxPool2d(2)
        self.second = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x):
        return self.second(self.pool(self.first(x).relu()))


def test_strided_non_square_chain_agrees_with_the_formula():
    # rows: 1 + (3-1)*1 + (2-1)*1 + (3-1)*2 = 8;  cols: 1 + (5-1)*1 + (2-1)*1 + (3-1)*2 = 10
    model = Chain()
    assert chain_receptive_field(model) == (8, 10)
    assert receptive_field(model) == (8, 10)


def test_chain_formula_refuses_what_is_not_a_chain():
    with pytest.raises(ValueError, match="receptive_field"):
        chain_receptive_field(UNet(1, 2, base_channels=1, depth=1))
    with pytest.raises(ValueError, match="Linear"):
        chain_receptive_field(SlidingWindow(1, 2, window=5, width=1, depth=1))


# U-Net rows by hand. An interval [a, b] of rows at a layer's output depends on rows
#   [a - 1, b + 1]    through a 3x3 conv with padding 1 (two of them: [a - 2, b + 2])
#   [2a, 2b + 1]      through 2x2 max pooling (output a reads rows 2a and 2a + 1)
#   [2a - 1, 2b + 1]  through a 3x3 conv with stride 2 and padding 1 (down="conv")
#   [a // 2, b // 2]  through the 2x2 stride-2 transpose conv (output o comes from o // 2)
# Depth 1, output row q = 2m: decoder convs [2m-2, 2m+2]; the skip's convs [2m-4, 2m+4];
# the up-conv [m-1, m+1]; bottleneck [m-3, m+3]; pool [2m-6, 2m+7]; encoder [2m-8, 2m+9]:
# 18 rows (and 18 for q = 2m + 1 too).
def unet_rows(q, depth, down="pool"):
    def level(interval, depth_left):
        a, b = interval[0] - 2, interval[1] + 2               # decoder (or bottleneck) convs
        if depth_left == 0:
            return a, b
        lo, hi = level((a // 2, b // 2), depth_left - 1)     # up-conv, then the level below
        lo, hi = (2 * lo, 2 * hi + 1) if down == "pool" else (2 * lo - 1, 2 * hi + 1)
        return min(a - 2, lo - 2), max(b + 2, hi + 2)        # skip's encoder convs / encoder convs
    a, b = level((q, q), depth)
    return b - a + 1


def test_unet_rows_by_hand_helper():
    assert unet_rows(40, 1) == unet_rows(41, 1) == 18
    assert unet_rows(40, 0) == 5


@pytest.mark.parametrize("depth, down, expected", [
    (1, "pool", 18), (2, "pool", 44), (3, "pool", 100), (1, "conv", 19), (2, "conv", 47),
])
def test_unet_field_matches_the_interval_count(depth, down, expected):
    # The field depends on the pixel's place on the 2**depth pooling grid; the report gives the largest.
    assert max(unet_rows(q, depth, down) for q in range(64, 64 + 2 ** depth)) == expected
    model = UNet(in_channels=1, num_classes=2, base_channels=1, depth=depth, down=down)
    assert receptive_field(model) == (expected, expected)


def test_field_does_not_depend_on_channels_or_batch_norm():
    thin = UNet(in_channels=1, num_classes=1, base_channels=1, depth=2)
    wide = UNet(in_channels=3, num_classes=4, base_channels=4, depth=2, batch_norm=True, seed=5)
    assert receptive_field(thin) == receptive_field(wide) == (44, 44)


# ----------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def small_report():
    return complexity.report(size=(16, 20), in_channels=2, num_classes=3, width=4, depth=2,
                             base_channels=2, window=7, naive_depth=2)


def test_report_rows_agree_with_the_built_models(small_report):
    naive = SlidingWindow(2, 3, window=7, width=4, depth=2)
    fcn = FCN(2, 3, width=4, depth=2)
    unet = UNet(2, 3, base_channels=2, depth=2, batch_norm=True)    # train's default U-Net
    rows = {r["model"]: r for r in small_report["rows"]}
    assert [r["model"] for r in small_report["rows"]] == ["naive", "naive as FCN", "FCN", "U-Net"]
    for name, model in [("naive", naive), ("naive as FCN", naive.to_fcn()), ("FCN", fcn), ("U-Net", unet)]:
        assert rows[name]["parameters"] == count_parameters(model)
    assert rows["naive"]["macs"] == 16 * 20 * window_cost(naive)[0]
    assert rows["naive as FCN"]["macs"] == to_fcn_macs(16, 20, 2, 7, 4, 3)
    assert rows["FCN"]["macs"] == 16 * 20 * 228 and rows["FCN"]["activation_bytes"] == 16 * 20 * 11 * FLOAT32
    assert rows["U-Net"]["macs"] == forward_cost(unet, (16, 20))[0]
    assert small_report["to_fcn_mac_ratio"] == rows["naive"]["macs"] / rows["naive as FCN"]["macs"]
    fields = [r["receptive_field"] for r in small_report["rows"]]
    assert fields == [(7, 7), (7, 7), (5, 5), (44, 44)]


def test_run_prints_the_table_and_the_dense_layer_block(capsys):
    from tinyseg.cli import main
    assert main(["complexity", "--size", "16", "20", "--in-channels", "2", "--classes", "3",
                 "--width", "4", "--depth", "2", "--base-channels", "2",
                 "--window", "7", "--naive-depth", "2"]) == 0
    text = capsys.readouterr().out
    assert "16 x 20" in text
    for expected in ["naive as FCN", "U-Net", "44 x 44", "320,000,041", "1,321", "shares one small kernel",
                     "dense layers over every pixel"]:
        assert expected in text
    assert "seed" not in text and "document" not in text         # it explains, it does not cite
