"""The bytes the U-Net training step reads and writes outside its products, counted call by call.

    python benchmarks/bench_traffic.py                       # base 16, depth 3, batch 8, 3x128x128, SGD
    python benchmarks/bench_traffic.py --batch-norm --optimizer adam
    python benchmarks/bench_traffic.py --code /other/checkout   # another version's tinyseg

Two figures that do not depend on the machine (the CPU speed issue asks for them): the bytes the
step writes outside its matrix products, and the passes over activations that makes, in all and
to memory. Where copying is slow, these are what the step pays for beside its products. How the
calls are counted: traffic.py. The step runs on one thread (a call cut into samples over threads
moves the same bytes). An activation is a layer's output (convolution, batch norm, ReLU, pooling,
transpose convolution, concatenation) in one forward pass of the textbook network;
`layer_output_bytes` sums them, the same figure for every version of the code, and
passes = bytes / activation bytes.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from traffic import BLOCK_BYTES, PRODUCTS, Tally, counted, counting


# ----------------------------------------------------------- the U-Net step

def layer_output_bytes(batch: int, size: int, base: int, depth: int, num_classes: int,
                       batch_norm: bool, itemsize: int = 4) -> int:
    """Bytes of every layer output of one U-Net forward pass, as the textbook network makes them.

    Per level: two convolutions (each with its ReLU, and batch norm if asked), pooling; coming up:
    the transpose convolution, the concatenation, two convolutions again. Then the bottleneck and
    the 1x1 head (tinyseg/models/unet.py draws it).
    """
    per_convolution = 3 if batch_norm else 2                  # conv, (batch norm,) ReLU
    elements = num_classes * size * size                       # the head
    for level in range(depth):
        channels, side = base * 2**level, size // 2**level
        image = channels * side * side
        elements += 2 * per_convolution * image + image // 4    # encoder, pooling
        elements += image + 2 * image + 2 * per_convolution * image   # up, cat, decoder
    elements += 2 * per_convolution * base * 2**depth * (size // 2**depth) ** 2   # bottleneck
    return elements * batch * itemsize


def count_step(batch: int, size: int, batch_norm: bool, optimizer: str) -> tuple:
    """(Tally of the second training step, activation bytes), U-Net base 16, depth 3, 4 classes.

    The benchmarks' U-Net and batch (steps.py's CONFIGS["unet"] and make_batch) are written out
    here: steps.py imports this checkout's tinyseg, and --code may name another version.
    """
    import tinyseg.functional as F
    from tinyseg import optim
    from tinyseg.models import build_model
    from tinyseg.tensor import Tensor

    config = dict(name="unet", in_channels=3, num_classes=4, base_channels=16, depth=3,
                  batch_norm=batch_norm)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, config["num_classes"], (batch, size, size))
    with counting() as tally:
        model = build_model(config)
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = counted(tensor.data)
        step_rule = (optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "sgd"
                     else optim.Adam(model.parameters(), lr=1e-3))
        x = Tensor(counted(images))
        for _ in range(2):                                     # the first one makes the state
            tally.reset()
            step_rule.zero_grad()
            F.cross_entropy(model(x), counted(labels)).backward()
            step_rule.step()
    return tally, layer_output_bytes(batch, size, config["base_channels"], config["depth"],
                                     config["num_classes"], batch_norm)


def report(tally: Tally, activations: int, top: int) -> str:
    """Markdown: the totals, then the calls that write the most outside the products, by NumPy
    function and by the tinyseg function that called it.

    (Not common.format_table: common imports tinyseg, and this file counts the tinyseg of --code,
    which may be another version.)
    """
    mib = 2.0**20
    read, written, to_memory = tally.outside_products()
    calls = sum(tally.calls[n] for n in tally.calls if n not in PRODUCTS)
    lines = [f"activations (one forward pass, every layer's output): {activations / mib:.1f} MiB",
             f"outside the products: written {written / mib:.1f} MiB ({written / activations:.2f} passes), "
             f"read {read / mib:.1f} MiB ({read / activations:.2f} passes), {calls} calls",
             f"  of those written, to memory (a {BLOCK_BYTES / mib:.0f} MiB cache's model): "
             f"{to_memory / mib:.1f} MiB ({to_memory / activations:.2f} passes); "
             f"in cache: {(written - to_memory) / mib:.1f} MiB",
             f"products: {sum(tally.calls[n] for n in PRODUCTS)} calls, {tally.flops / 1e9:.4g} GFLOP, "
             f"operands {sum(tally.read[n] for n in PRODUCTS) / mib:.1f} MiB, "
             f"results {sum(tally.written[n] for n in PRODUCTS) / mib:.1f} MiB",
             "", "| call | calls | written MiB | read MiB | passes written | to memory MiB |",
             "|---|---|---|---|---|---|"]
    names = sorted((n for n in tally.calls if n not in PRODUCTS), key=lambda n: -tally.written[n])
    for n in names[:top]:
        lines.append(f"| {n} | {tally.calls[n]} | {tally.written[n] / mib:.1f} | {tally.read[n] / mib:.1f} "
                     f"| {tally.written[n] / activations:.2f} | {tally.written_to_memory[n] / mib:.1f} |")
    lines += ["", "| call | in (tinyseg/...) | calls | written MiB | passes written | to memory MiB |",
              "|---|---|---|---|---|---|"]
    places = sorted(((call, where), counts) for (call, where), counts in tally.places.items()
                    if call not in PRODUCTS)
    for (call, where), (calls, written, to_memory) in sorted(places, key=lambda entry: -entry[1][1])[:top]:
        lines.append(f"| {call} | {where} | {calls} | {written / mib:.1f} | {written / activations:.2f} "
                     f"| {to_memory / mib:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="the checkout whose tinyseg to count (default: this one)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--top", type=int, default=15, help="how many calls to list")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"      # before tinyseg is imported: one thread runs every call
    sys.path.insert(0, os.path.abspath(args.code))
    tally, activations = count_step(args.batch, args.size, args.batch_norm, args.optimizer)
    import tinyseg
    print(f"U-Net step, batch {args.batch}, 3x{args.size}x{args.size}, "
          f"{'batch norm + ' if args.batch_norm else ''}{args.optimizer}; "
          f"tinyseg from {os.path.dirname(os.path.dirname(tinyseg.__file__))}")
    print(report(tally, activations, args.top))


if __name__ == "__main__":
    main()
