"""The Markdown report of the model benchmark (bench_models.py's results dict).

bench_models.py measures and run_suite.py writes files; both print this
report, so it lives here, importing neither of them: the three scripts form
a line (common <- report <- bench_models <- run_suite), not a cycle.
"""

from __future__ import annotations

from common import format_table, lookup

MODE_UNITS = {"inference": "ms per image", "train": "ms per training step"}
CLASSES = {"naive": "SlidingWindow", "fcn": "FCN", "unet": "UNet"}


def model_tables(models: dict) -> str:
    """Markdown: per mode a time table (with ratios) and a memory table, then the fits."""
    table = lookup(models["rows"])
    ratio_of = {(e["model"], e["mode"], e["size"]): e for e in models["ratios"]}
    found = [tuple(t.split("/")) for t in models["targets"]]
    parts = []
    for mode, unit in MODE_UNITS.items():
        keys = list(dict.fromkeys((r["model"], r["size"]) for r in models["rows"] if r["mode"] == mode))
        if not keys:
            continue
        times, memory = [], []
        for name, size in keys:
            rows = {(fw, dev): table.get((name, mode, size, fw, dev)) for fw, dev in found}
            any_row = next(r for r in rows.values() if r)
            line = dict(model=name, size=size, batch=any_row["batch"])
            mem = dict(model=name, size=size, batch=any_row["batch"])
            for (fw, dev), row in rows.items():
                line[f"{fw} {dev}"] = row["ms"] if row else None
                mem[f"{fw} {dev} " + ("RSS" if dev == "cpu" else "pool")] = row["peak_MiB"] if row else None
                if fw == "tinyseg" and dev == "cpu" and row:
                    mem["tinyseg numpy"] = row.get("numpy_MiB")
            line.update({k: v for k, v in ratio_of[(name, mode, size)].items()
                         if k not in ("model", "mode", "size")})
            times.append(line)
            memory.append(mem)
        time_columns = list(dict.fromkeys(c for line in times for c in line))
        memory_columns = list(dict.fromkeys(c for m in memory for c in m))
        once = [f"{r['model']} {r['size']} {r['framework']}/{r['device']}" for r in models["rows"]
                if r["mode"] == mode and r["timed_once"]]
        parts += [f"### {mode}: {unit}", "", format_table(times, time_columns), ""]
        if once:
            parts += ["Timed once after the warm-up (longer than the time budget): "
                      + ", ".join(once) + ".", ""]
        parts += [f"### {mode}: peak memory, MiB (RSS growth on the CPU, pool growth on the GPU; "
                  "numpy = tracemalloc's peak of NumPy arrays)", "",
                  format_table(memory, memory_columns), ""]
    fits = [dict(model=f["model"], mode=f["mode"], target=f"{f['framework']}/{f['device']}",
                 b=f["b"], **{"b (two largest)": f["b_two_largest"]},
                 sizes=" ".join(str(s) for s in f["sizes"])) for f in models["growth"]]
    if fits:
        parts += ["### growth exponent b in time ~ a * (H*W)^b (least squares, log-log)", "",
                  format_table(fits, ["model", "mode", "target", "b", "b (two largest)", "sizes"]), ""]
    return "\n".join(parts)


def rss_cell(probe: dict) -> str | None:
    """'first / second' step RSS growth of a fresh-process probe, or why it failed."""
    if "first_step_MiB" in probe:
        return f"{probe['first_step_MiB']:.0f} / {probe['second_step_MiB']:.0f}"
    return f"probe failed: {probe.get('error')}" if probe else None


def unet_steps_table(steps: list) -> str:
    """Markdown for the U-Net step variants: time, ratio and memory on each device, a row each."""
    rows = []
    for step in steps:
        for device, entry in step["devices"].items():
            row = {"variant": step["variant"], "device": device, "tinyseg ms": entry.get("tinyseg_ms"),
                   "pytorch ms": entry.get("pytorch_ms"), "tinyseg/pytorch": entry.get("ratio")}
            if device == "cpu":
                row["tinyseg tracemalloc MiB"] = entry.get("tinyseg_tracemalloc_MiB")
                for fw in ("tinyseg", "pytorch"):
                    row[f"{fw} RSS MiB (1st / 2nd step)"] = rss_cell(entry.get(f"{fw}_rss") or {})
            else:
                row["tinyseg pool MiB"] = entry.get("tinyseg_pool_MiB")
                row["pytorch pool MiB"] = entry.get("pytorch_pool_MiB")
            rows.append(row)
    columns = list(dict.fromkeys(c for row in rows for c in row))
    first = steps[0]
    title = (f"### U-Net training step: base {first['config']['base_channels']}, depth "
             f"{first['config']['depth']}, batch {first['batch']}, 3x{first['size']}x{first['size']}, "
             f"cross-entropy, median of {first['repeat']} (the frameworks alternate step by step)")
    return "\n".join([title, "", format_table(rows, columns), ""])


def markdown(results: dict) -> str:
    """The whole report: stamp, settings, tables, notes and what was skipped."""
    parts = ["# tinyseg model benchmark", "", f"Machine: {results['machine']}", ""]
    settings = results.get("settings", {})
    if settings:
        parts += ["Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), ""]
    for name, count in results.get("parameters", {}).items():
        config = results.get("configs", {}).get(name, {})
        arguments = ", ".join(f"{k}={v}" for k, v in config.items() if k != "name")
        parts.append(f"- {name}: {CLASSES.get(name, name)}({arguments}), {count:,} parameters")
    parts.append("")
    if "models" in results:
        parts += ["## Models", ""]
        if any(len(entry) > 3 for entry in results["models"]["ratios"]):   # beyond model, mode, size
            parts += ["Ratios: tinyseg/pytorch < 1 means tinyseg is faster; "
                      "cpu/cuda is the GPU's speed-up.", ""]
        parts.append(model_tables(results["models"]))
    steps = results.get("unet_steps", [])
    if steps:
        parts += ["## U-Net training step against PyTorch", "", unet_steps_table(steps)]
    notes = results.get("models", {}).get("notes", []) or (steps[0]["notes"] if steps else [])
    skipped = results.get("models", {}).get("skipped", [])
    if notes or skipped:
        parts += ["## Not measured", ""] + [f"- {line}" for line in notes + skipped] + [""]
    return "\n".join(parts)
