"""Operator benchmark: tinyseg against PyTorch (CPU) on the same shapes.

    python benchmarks/bench_ops.py                   # float32, batch 8
    python benchmarks/bench_ops.py --quick           # tiny shapes, for a smoke test
    python benchmarks/bench_ops.py --form textbook   # tinyseg's textbook forms instead of its fast ones
    OMP_NUM_THREADS=1 python benchmarks/bench_ops.py --unet-layers --batch 4   # the U-Net step's layers

The U-Net's pairs conv2d_relu and batch_norm_relu are one operator in
tinyseg and two in PyTorch (conv2d, then relu); each row times the pair.

For each operator and shape: forward and forward+backward time in ms, the
same for PyTorch where installed, the ratio tinyseg / PyTorch (lower is
better, 1.0 = as fast), GFLOP/s of tinyseg's forward+backward, and the peak
extra memory tinyseg's forward+backward holds at once (MiB).

For the convolutions, `of_gemm` compares that GFLOP/s with one plain NumPy
matrix product of the forward's size, (O, C*kh*kw) @ (C*kh*kw, N*OH*OW),
timed in turn with the forward+backward calls: the most a convolution built
on GEMM could reach on this machine (1.0 = all of it).

The two frameworks alternate call by call (tinyseg, PyTorch, tinyseg, ...),
with a short untimed pause before each call (common.settle), and each
reports its median, so a burst of load from elsewhere slows both.
Set OMP_NUM_THREADS=1 to compare one thread against one thread.

`--unet-layers` times the U-Net training step's 3x3 convolutions instead, each
with its ReLU, one at a time (bench_unet_step's model and image size; no bias):
where the step's time and its gap to PyTorch lie, layer by layer. With
`--batch 4` and OMP_NUM_THREADS=1 that is one share of the data-parallel step
(tinyseg/data_parallel.py: two cores each take 4 of the 8 samples through the
whole step) against PyTorch on one thread.

`--form textbook` times what a reader steps through first: the convolutions
inside `F.kernels("textbook")` (W @ im2col(x)) and cross_entropy,
batch_norm and the fused pairs conv2d_relu and batch_norm_relu as their
textbook forms, built of Tensor operations; set against
the default run, it measures what the fast forms buy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinyseg  # noqa: E402
import tinyseg.functional as F  # noqa: E402
from common import format_table, machine_stamp, peak_extra_mib, settle, threads_stamp, torch  # noqa: E402
from bench_unet_step import QUICK_UNET_STEP, UNET_STEP  # noqa: E402
from steps import CONFIGS  # noqa: E402
from tinyseg.models import build_model  # noqa: E402
from tinyseg.nn.conv import Conv2d  # noqa: E402


# tinyseg.functional with the fused operators swapped for their textbook forms (--form textbook)
TEXTBOOK_F = types.SimpleNamespace(conv2d=F.conv2d, conv_transpose2d=F.conv_transpose2d,
                                   max_pool2d=F.max_pool2d, cross_entropy=F.cross_entropy_textbook,
                                   batch_norm=F.batch_norm_textbook, relu=F.relu,
                                   conv2d_relu=F.conv2d_relu_textbook,
                                   batch_norm_relu=F.batch_norm_relu_textbook)
CONVOLUTIONS = ("conv2d", "conv2d_relu")
NORMALIZATIONS = ("batch_norm", "batch_norm_relu")


def conv_case(name, c_in, c_out, size, kernel=3, stride=1, padding=1, kind="conv2d"):
    oh = (size + 2 * padding - kernel) // stride + 1
    return dict(name=name, kind=kind, c_in=c_in, c_out=c_out, size=size, kernel=kernel,
                stride=stride, padding=padding, macs_per_sample=c_out * c_in * kernel * kernel * oh * oh)


def cases(quick: bool):
    if quick:
        return [conv_case("conv 3->8 @16", 3, 8, 16),
                dict(name="maxpool 2x2 8x16x16", kind="max_pool2d", c_in=8, size=16, kernel=2, stride=2),
                dict(name="tconv 8->4 k2 s2 @8", kind="conv_transpose2d", c_in=8, c_out=4, size=8,
                     kernel=2, stride=2, macs_per_sample=8 * 4 * 4 * 8 * 8),
                dict(name="cross_entropy 4x16x16", kind="cross_entropy", c_in=4, size=16),
                dict(name="batch_norm 4x16x16", kind="batch_norm", c_in=4, size=16),
                conv_case("conv+relu 3->8 @16", 3, 8, 16, kind="conv2d_relu"),
                dict(name="batch_norm+relu 4x16x16", kind="batch_norm_relu", c_in=4, size=16)]
    return [
        conv_case("conv 3->64 @128", 3, 64, 128),
        conv_case("conv 64->64 @128", 64, 64, 128),
        conv_case("conv 128->128 @64", 128, 128, 64),
        conv_case("conv 256->256 @32", 256, 256, 32),
        conv_case("conv 64->128 s2 @64", 64, 128, 64, stride=2),
        dict(name="maxpool 2x2 64x128x128", kind="max_pool2d", c_in=64, size=128, kernel=2, stride=2),
        dict(name="tconv 128->64 k2 s2 @64", kind="conv_transpose2d", c_in=128, c_out=64, size=64,
             kernel=2, stride=2, macs_per_sample=128 * 64 * 4 * 64 * 64),
        dict(name="cross_entropy 8x4x128x128", kind="cross_entropy", c_in=4, size=128),
        dict(name="batch_norm 8x32x128x128", kind="batch_norm", c_in=32, size=128),
        conv_case("conv+relu 64->64 @128", 64, 64, 128, kind="conv2d_relu"),    # the U-Net's pairs: one
        dict(name="batch_norm+relu 8x32x128x128", kind="batch_norm_relu", c_in=32, size=128),  # operator
    ]                                                                            # here, two in PyTorch


def unet_layer_cases(size: int) -> list:
    """The 3x3 convolutions of the benchmarks' U-Net (steps.CONFIGS["unet"]) on size x size images,
    each as conv+relu, named by the layer: "conv+relu 16->32 @64 (encoder.1.0)"."""
    model = build_model(CONFIGS["unet"])
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, Conv2d) or module.kernel_size != (3, 3):
            continue
        stage, block = name.split(".")[:2]                  # encoder.1.0 -> level 1; decoder.0 is the deepest
        level = {"encoder": int(block), "bottleneck": model.depth}.get(stage, model.depth - 1 - int(block))
        c_in, c_out, at = module.in_channels, module.out_channels, size // 2**level
        found.append(conv_case(f"conv+relu {c_in}->{c_out} @{at} ({name})", c_in, c_out, at,
                               padding=module.padding[0], kind="conv2d_relu"))
    return found


def make_inputs(case, batch, rng):
    """Arrays for one case: (x, weight or target)."""
    x = rng.standard_normal((batch, case["c_in"], case["size"], case["size"])).astype(np.float32)
    kind = case["kind"]
    if kind in CONVOLUTIONS:
        w = rng.standard_normal((case["c_out"], case["c_in"], case["kernel"], case["kernel"]))
        return x, (w * 0.05).astype(np.float32)
    if kind == "conv_transpose2d":
        w = rng.standard_normal((case["c_in"], case["c_out"], case["kernel"], case["kernel"]))
        return x, (w * 0.05).astype(np.float32)
    if kind == "cross_entropy":
        return x, rng.integers(0, case["c_in"], (batch, case["size"], case["size"]))
    if kind in NORMALIZATIONS:                     # running mean, running var, weight, bias
        c = case["c_in"]
        return x, [np.zeros(c, np.float32), np.ones(c, np.float32),
                   rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)]
    return x, None


def op_call(functional, case, x, other):
    """The call for a case. `functional` is tinyseg.functional or torch.nn.functional:
    the two share names and argument order, so one function builds both calls."""
    kind, s, p = case["kind"], case.get("stride", 1), case.get("padding", 0)
    if kind == "conv2d":
        return lambda: functional.conv2d(x, other, stride=s, padding=p)
    if kind == "conv_transpose2d":
        return lambda: functional.conv_transpose2d(x, other, stride=s)
    if kind == "max_pool2d":
        return lambda: functional.max_pool2d(x, case["kernel"], s)
    if kind == "batch_norm":
        return lambda: functional.batch_norm(x, *other, training=True)
    if kind == "conv2d_relu":                  # tinyseg's one operator; PyTorch's conv2d, then relu
        if hasattr(functional, "conv2d_relu"):
            return lambda: functional.conv2d_relu(x, other, stride=s, padding=p)
        return lambda: functional.relu(functional.conv2d(x, other, stride=s, padding=p))
    if kind == "batch_norm_relu":
        if hasattr(functional, "batch_norm_relu"):
            return lambda: functional.batch_norm_relu(x, *other, training=True)
        return lambda: functional.relu(functional.batch_norm(x, *other, training=True))
    return lambda: functional.cross_entropy(x, other)


def forward_backward(fn, inputs):
    """Run fn, then backward with a ones gradient, clearing the inputs' grads."""
    def run():
        for t in inputs:
            t.grad = None
        out = fn()
        if out.ndim == 0:
            out.backward()
        else:
            out.backward(out.xp.ones(out.shape, dtype=out.dtype) if hasattr(out, "xp")
                         else torch.ones_like(out))
    return run


def framework_inputs(case, x_np, other_np, tensor):
    """(x, other, leaves) for one framework; `tensor(array, requires_grad)` makes its tensors."""
    x = tensor(x_np, True)
    kind = case["kind"]
    if kind in CONVOLUTIONS + ("conv_transpose2d",):
        other = tensor(other_np, True)
        return x, other, [x, other]
    if kind in NORMALIZATIONS:                     # running stats are buffers, weight and bias learn
        other = [tensor(a, i >= 2) for i, a in enumerate(other_np)]
        return x, other, [x] + other[2:]
    if kind == "cross_entropy":
        return x, tensor(other_np, False), [x]     # the integer labels
    return x, None, [x]


def torch_tensor(array, requires_grad):
    return torch.tensor(array, requires_grad=requires_grad)


def tinyseg_tensor(array, requires_grad):
    return tinyseg.Tensor(array, requires_grad=requires_grad)


def alternating_medians(functions: dict, repeat: int) -> dict:
    """{name: median ms}, calling the functions in turn `repeat` times after one warm-up each."""
    for fn in functions.values():
        fn()
    times = {name: [] for name in functions}
    for _ in range(repeat):
        for name, fn in functions.items():
            if len(functions) > 1:
                settle()
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def gemm_product(case, batch):
    """(call, GFLOP): one NumPy float32 matrix product of the size of the case's forward GEMM."""
    oh = (case["size"] + 2 * case.get("padding", 0) - case["kernel"]) // case.get("stride", 1) + 1
    depth = case["c_in"] * case["kernel"] ** 2
    rng = np.random.default_rng(1)
    w = rng.standard_normal((case["c_out"], depth), dtype=np.float32)
    cols = rng.standard_normal((depth, batch * oh * oh), dtype=np.float32)
    out = np.empty((case["c_out"], batch * oh * oh), dtype=np.float32)
    return (lambda: np.matmul(w, cols, out=out)), 2 * case["c_out"] * depth * batch * oh * oh / 1e9


def measure(case, batch, repeat, functional=F):
    """One row of the table; `functional` is tinyseg's F, or TEXTBOOK_F for its textbook forms."""
    rng = np.random.default_rng(0)
    x_np, other_np = make_inputs(case, batch, rng)
    x, other, leaves = framework_inputs(case, x_np, other_np, tinyseg_tensor)
    fn = op_call(functional, case, x, other)
    forward = {"tinyseg": fn}
    both = {"tinyseg": forward_backward(fn, leaves)}
    if torch is not None:
        tx, tother, tleaves = framework_inputs(case, x_np, other_np, torch_tensor)
        tfn = op_call(torch.nn.functional, case, tx, tother)
        forward["torch"] = tfn
        both["torch"] = forward_backward(tfn, tleaves)
    if case["kind"] in CONVOLUTIONS:   # the reference product takes its turn with the others
        both["gemm"], gemm_gflop = gemm_product(case, batch)
    with tinyseg.no_grad(), torch_no_grad():
        fwd = alternating_medians(forward, repeat)
    fwd_bwd = alternating_medians(both, repeat)
    row = dict(op=case["name"], fwd_ms=fwd["tinyseg"], fwd_bwd_ms=fwd_bwd["tinyseg"])
    row["peak_MiB"] = peak_extra_mib(both["tinyseg"])
    if "macs_per_sample" in case:  # forward+backward = 3 products of the forward's size
        row["GFLOP/s"] = 3 * 2 * case["macs_per_sample"] * batch / (row["fwd_bwd_ms"] * 1e6)
    if case["kind"] in CONVOLUTIONS:
        row["of_gemm"] = row["GFLOP/s"] / (gemm_gflop / (fwd_bwd["gemm"] / 1e3))
    if torch is not None:
        row["torch_fwd_ms"], row["torch_fwd_bwd_ms"] = fwd["torch"], fwd_bwd["torch"]
        row["fwd_ratio"] = row["fwd_ms"] / row["torch_fwd_ms"]
        row["fwd_bwd_ratio"] = row["fwd_bwd_ms"] / row["torch_fwd_bwd_ms"]
    return row


def torch_no_grad():
    """torch.no_grad(), or a context that does nothing without PyTorch."""
    return torch.no_grad() if torch is not None else contextlib.nullcontext()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--form", choices=("fast", "textbook"), default="fast",
                        help="tinyseg's fast forms (the default) or its textbook forms")
    parser.add_argument("--unet-layers", action="store_true",
                        help="the U-Net step's 3x3 convolutions (with ReLU), one row each, instead")
    args = parser.parse_args(argv)
    functional = TEXTBOOK_F if args.form == "textbook" else F
    size = (QUICK_UNET_STEP if args.quick else UNET_STEP)["size"]
    chosen = unet_layer_cases(size) if args.unet_layers else cases(args.quick)
    with F.kernels(args.form):
        rows = [measure(case, args.batch, args.repeat, functional) for case in chosen
                if args.only in case["name"]]
    columns = ["op", "fwd_ms", "torch_fwd_ms", "fwd_ratio", "fwd_bwd_ms", "torch_fwd_bwd_ms",
               "fwd_bwd_ratio", "GFLOP/s", "of_gemm", "peak_MiB"]
    print(f"float32, batch {args.batch}, median of {args.repeat} (alternating); "
          f"ratio = tinyseg / PyTorch; tinyseg's {args.form} forms")
    print(f"{machine_stamp()}; {threads_stamp()}")
    print(format_table(rows, columns))
    return rows


if __name__ == "__main__":
    main()
