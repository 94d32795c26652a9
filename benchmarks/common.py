"""Helpers shared by the benchmarks: timing, peak memory, tables, optional PyTorch.

Timings are medians over repeats after a warm-up (the first call pays for
allocation and caches). Compare ratios within one run, not absolute times
across runs: these machines are noisy.
"""

from __future__ import annotations

import platform
import statistics
import time
import tracemalloc

import numpy as np

try:
    import torch
except ImportError:  # the PyTorch columns are left empty
    torch = None


def median_ms(fn, repeat: int = 5, warmup: int = 1, sync=None) -> float:
    """Median wall time of fn() in milliseconds; `sync()` runs before each clock read."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_extra_mib(fn) -> float:
    """Largest amount of NumPy memory fn() holds at once beyond what existed before, in MiB.

    NumPy reports its allocations to tracemalloc, so this sees every array the
    operator creates (outputs, columns, temporaries), but not PyTorch's memory.
    """
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - before) / 2**20


def format_table(rows: list, columns: list) -> str:
    """A Markdown table; each row is a dict keyed by column name."""
    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_stamp() -> str:
    """One line: machine, Python, NumPy (and its BLAS), PyTorch."""
    blas = "unknown BLAS"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
    except Exception:
        pass
    torch_version = torch.__version__ if torch is not None else "not installed"
    return (f"{platform.machine()} {platform.processor() or ''} {_cpu_count()} cores, "
            f"Python {platform.python_version()}, NumPy {np.__version__} ({blas}), "
            f"PyTorch {torch_version}")


def _cpu_count() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
