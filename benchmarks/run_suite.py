"""Run the model benchmark suite and write its results: JSON, a Markdown table and PNG plots.

    python benchmarks/run_suite.py                      # about 5 minutes on 2 CPU cores
    python benchmarks/run_suite.py --quick --out /tmp/b # seconds: a smoke test
    python benchmarks/run_suite.py --naive-256          # also train the naive model at 256x256
    OMP_NUM_THREADS=1 python benchmarks/run_suite.py    # one thread each (a busy machine)

Writes under --out (default benchmarks/results/):

    models.json          every measurement, ratio and fit, with "machine" and "versions"
    models.md            the same as Markdown tables, the machine on the first lines
    time_vs_pixels.png   time against pixels on log-log axes, per model and framework/device
    cpu_vs_gpu.png       bars: CPU against GPU, tinyseg against PyTorch (with a GPU)
    frameworks.png       the same bars without a GPU: tinyseg against PyTorch on the CPU

What is measured and how: see bench_models.py and bench_unet_step.py. The options are
bench_models.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_models  # noqa: E402
from common import lookup  # noqa: E402
from report import markdown  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
STYLES = {"tinyseg/cpu": ("-", "o"), "pytorch/cpu": ("--", "s"),
          "tinyseg/cuda": (":", "^"), "pytorch/cuda": ("-.", "v")}


# ----------------------------------------------------------- JSON and plots

def write_json(results: dict, path: str) -> None:
    ordered = {"machine": results["machine"], **{k: v for k, v in results.items() if k != "machine"}}
    with open(path, "w") as file:
        json.dump(ordered, file, indent=1)


def footnote(figure, results: dict) -> None:
    """The machine stamp, small, along the bottom of a figure."""
    figure.text(0.01, 0.005, textwrap.fill(results["machine"], 160), fontsize=7, va="bottom")


def plot_time_vs_pixels(results: dict, path: str, plt) -> None:
    """One panel per mode: ms per image against H*W, log-log, a line per model and target."""
    models = results["models"]
    fits = {(f["model"], f["mode"], f"{f['framework']}/{f['device']}"): f["b"] for f in models["growth"]}
    figure, axes = plt.subplots(1, len(bench_models.MODES), figsize=(13, 5.5), squeeze=False)
    colors = {name: f"C{i}" for i, name in enumerate(bench_models.CONFIGS)}
    for ax, mode in zip(axes[0], bench_models.MODES):
        lines = {}
        for row in models["rows"]:
            if row["mode"] == mode:
                target = f"{row['framework']}/{row['device']}"
                lines.setdefault((row["model"], target), []).append(row)
        for (name, target), rows in lines.items():
            rows.sort(key=lambda r: r["pixels"])
            style, marker = STYLES[target]
            b = fits.get((name, mode, target))
            label = f"{name} {target}" + (f" (b={b:.2f})" if b is not None else "")
            ax.plot([r["pixels"] for r in rows], [r["ms_per_image"] for r in rows], style,
                    marker=marker, color=colors[name], label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("pixels H*W")
        ax.set_ylabel("ms per image" if mode == "inference" else "ms per image (step time / batch)")
        ax.set_title(f"{mode}: time ~ a (H*W)^b")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    footnote(figure, results)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_bars(results: dict, path: str, plt) -> None:
    """Bars per target for each model at its largest size measured everywhere; and the U-Net step."""
    models = results["models"]
    targets = models["targets"]
    table = lookup(models["rows"])
    panels = list(bench_models.MODES) + (["unet_step"] if results.get("unet_steps") else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    width = 0.8 / len(targets)
    for ax, panel in zip(axes[0], panels):
        groups = []
        if panel == "unet_step":
            for step in results["unet_steps"]:
                values = {t: step["devices"].get(t.split("/")[1], {}).get(f"{t.split('/')[0]}_ms")
                          for t in targets}
                groups.append((f"U-Net {step['variant']}\nbatch {step['batch']}, {step['size']}px", values))
            ax.set_title("U-Net training step, ms")
        else:
            for name in bench_models.CONFIGS:
                sizes = [r["size"] for r in models["rows"] if r["model"] == name and r["mode"] == panel]
                common = [s for s in sorted(set(sizes), reverse=True)
                          if all((name, panel, s, *t.split("/")) in table for t in targets)]
                if common:
                    rows = {t: table[(name, panel, common[0], *t.split("/"))] for t in targets}
                    batch = next(iter(rows.values()))["batch"]
                    groups.append((f"{name}\n{common[0]}px, batch {batch}",
                                   {t: row["ms"] for t, row in rows.items()}))
            ax.set_title(f"{panel}, ms " + ("per image" if panel == "inference" else "per step"))
        for i, target in enumerate(targets):
            xs = [g + (i - (len(targets) - 1) / 2) * width for g in range(len(groups))]
            ys = [values.get(target) or 0 for _, values in groups]
            bars = ax.bar(xs, ys, width, label=target, color=f"C{i}")
            ax.bar_label(bars, labels=[(f"{y:.0f}" if y >= 100 else f"{y:.3g}") if y else "" for y in ys],
                         fontsize=7)
        ax.set_xticks(range(len(groups)), [label for label, _ in groups])
        if panel != "unet_step":                                  # the models differ a hundredfold
            ax.set_yscale("log")
            smallest = min((v for _, values in groups for v in values.values() if v), default=1.0)
            ax.set_ylim(bottom=smallest / 3)                      # room below the shortest bar
        ax.legend(fontsize=8)
    footnote(figure, results)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_plots(results: dict, out: str) -> list:
    """The PNG files, or none (with a note) when matplotlib is missing."""
    if "models" not in results or not results["models"]["rows"]:
        return []
    try:
        import matplotlib
        matplotlib.use("Agg")                                     # files only, no window
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no plots (pip install matplotlib)")
        return []
    has_gpu = any(t.endswith("/cuda") for t in results["models"]["targets"])
    paths = [os.path.join(out, "time_vs_pixels.png"),
             os.path.join(out, "cpu_vs_gpu.png" if has_gpu else "frameworks.png")]
    plot_time_vs_pixels(results, paths[0], plt)
    plot_bars(results, paths[1], plt)
    return paths


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_models.add_arguments(parser)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the results")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = bench_models.run(args)
    report = markdown(results)
    paths = [os.path.join(args.out, "models.json"), os.path.join(args.out, "models.md")]
    write_json(results, paths[0])
    with open(paths[1], "w") as file:
        file.write(report)
    if not args.no_plots:
        paths += write_plots(results, args.out)
    print(report)
    print("wrote " + ", ".join(paths))
    return results


if __name__ == "__main__":
    main()
