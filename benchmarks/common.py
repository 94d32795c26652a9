"""Helpers shared by the benchmarks: timing, peak memory, tables, optional PyTorch.

Timings are medians over repeats after a warm-up (the first call pays for
allocation and caches). Compare ratios within one run, not absolute times
across runs: these machines are noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

from tinyseg import share_processes

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


SETTLE_S = 0.15   # pause before each timed call when two frameworks alternate (see settle)


def settle() -> None:
    """Wait until the other framework's idle threads have stopped spinning.

    After a parallel call, OpenBLAS's and PyTorch's OpenMP worker threads
    busy-wait for new work for up to about 0.1 s. On a 2-core machine the
    framework timed next would share the cores with them (what that cost:
    benchmarks/results/timing_method.md). The pause is not timed.
    """
    time.sleep(SETTLE_S)


def peak_extra_mib(fn) -> float:
    """Largest amount of NumPy memory fn() holds at once beyond what existed before, in MiB.

    NumPy reports its allocations to tracemalloc, so this sees every array the
    operator creates (outputs, columns, temporaries), but not PyTorch's memory.
    tracemalloc sees one process: a training step's shares run on threads while
    it traces (tinyseg/share_processes.py), so that every share's arrays, those
    worker processes would hold, are counted.
    """
    shares_in_processes = share_processes.AVAILABLE
    share_processes.AVAILABLE = False
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    try:
        fn()
    finally:
        share_processes.AVAILABLE = shares_in_processes
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


def lookup(rows: list) -> dict:
    """(model, mode, size, framework, device) -> row, for the model benchmark's rows."""
    return {(r["model"], r["mode"], r["size"], r["framework"], r["device"]): r for r in rows}


def machine_stamp() -> str:
    """One line: machine, Python, NumPy (and its BLAS), PyTorch."""
    blas = "unknown BLAS"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
    except Exception:
        pass
    kernel = openblas_kernel()
    if kernel:
        blas += f" {kernel} kernel"
    if os.environ.get("OPENBLAS_CORETYPE"):   # a kernel chosen by hand, maybe slower than the CPU's own
        blas += f", OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}"
    torch_version = torch.__version__ if torch is not None else "not installed"
    cpu = " ".join(part for part in (platform.machine(), cpu_model() or platform.processor()) if part)
    load = ""
    if hasattr(os, "getloadavg"):   # how busy the machine was: others' work slows both frameworks
        load = ", load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())
    return (f"{cpu}, {_cpu_count()} cores, "
            f"Python {platform.python_version()}, NumPy {np.__version__} ({blas}), "
            f"PyTorch {torch_version}{load}")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The processor as Linux names it, e.g. 'AMD EPYC (family 25, model 17, AVX-512)'; '' elsewhere.

    Machines of one name differ (the vendor's name may be as short as 'AMD
    EPYC'), so the family and model numbers and AVX-512 go into the stamp too.
    cpuinfo: the text of /proc/cpuinfo (read from there when None).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as file:
                cpuinfo = file.read()
        except OSError:
            return ""
    lines = cpuinfo.split("\n\n")[0].splitlines()                   # the first processor
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    details = [f"family {fields['cpu family']}" if "cpu family" in fields else "",
               f"model {fields['model']}" if "model" in fields else "",
               "AVX-512" if "avx512f" in fields.get("flags", "").split() else ""]
    details = ", ".join(part for part in details if part)
    name = fields.get("model name", "")
    return f"{name} ({details})" if name and details else name


def openblas_kernel() -> str | None:
    """The CPU kernel NumPy's OpenBLAS chose at start-up ('SkylakeX', 'Haswell', ...), or None.

    OPENBLAS_CORETYPE, where set, forces an older kernel; the stamp shows which one ran.
    Read from the library NumPy ships (numpy.libs), so no threadpoolctl is needed.
    """
    import ctypes
    import glob
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(folder, "*openblas*")):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            function = getattr(library, name, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return None


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ----------------------------------------------------------- added for the model benchmarks

try:
    from tqdm.auto import tqdm
except ImportError:  # no progress bars, the same numbers
    tqdm = None


def progress(iterable=None, **kwargs):
    """`iterable` wrapped in a tqdm progress bar (on stderr), or unchanged without tqdm.

    With no iterable, a bar to .update() by hand (or an object that ignores
    the calls), so callers never need to ask whether tqdm is installed.
    """
    if tqdm is not None:
        return tqdm(iterable, **kwargs)
    return iterable if iterable is not None else _NoBar()


class _NoBar:
    """Stands in for a tqdm bar when tqdm is missing: every call does nothing."""

    n = 0

    def update(self, n=1):
        pass

    def reset(self):
        pass

    def set_description(self, text):
        pass

    def close(self):
        pass


def growth_exponent(pixels, times_ms) -> tuple:
    """(a, b) of time ~ a * pixels^b, by least squares on log-log axes.

    A straight line log t = log a + b log p through the points: b = 1 means
    time proportional to the number of pixels, b = 2 to its square. Fixed
    per-call costs flatten the small sizes and pull b below 1.
    """
    log_p = np.log(np.asarray(pixels, dtype=np.float64))
    log_t = np.log(np.asarray(times_ms, dtype=np.float64))
    if log_p.size < 2 or np.ptp(log_p) == 0:
        raise ValueError(f"growth_exponent: need at least two different sizes, got pixels {list(pixels)}")
    b, log_a = np.polyfit(log_p, log_t, 1)
    return float(np.exp(log_a)), float(b)


def repeats_within(budget_s: float, first_ms: float, max_repeat: int) -> int:
    """How many timed repeats (1 .. max_repeat) fit in budget_s, given one run took first_ms."""
    return int(max(1, min(max_repeat, budget_s * 1e3 // max(first_ms, 1e-3))))


def _proc_status_kib(field: str, pid="self"):
    """A field of /proc/<pid>/status in KiB ('VmRSS', 'VmHWM'), or None off Linux."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss(pid="self") -> bool:
    """Lower a process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0). True if done."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Ask glibc's malloc to give memory it keeps from freed blocks back to the system.

    Without this, memory freed by earlier work is handed out again without
    raising RSS, and a step's growth reads as zero. No-op off glibc.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_growth_mib(fn):
    """Run fn(); return how far the process's resident memory rose above its start, in MiB.

    Sees every allocation (NumPy's, PyTorch's, BLAS buffers), unlike
    tracemalloc. Free memory the allocator kept is released first, and on
    Linux the peak is reset, so the number is this call's own; elsewhere it
    falls back to ru_maxrss, which only shows a new all-time peak. Memory the
    allocator could not release can still be reused unseen, so in a
    long-running process this is a lower bound; a fresh process measures
    best. None where neither source exists.

    On Linux the growth of a training step's worker processes is added
    (tinyseg/share_processes.py): each one's peak above its RSS before fn(),
    or, for one that fn() started, above this process's anonymous and shared
    memory at the start (fork begins a process with its parent's pages mapped,
    which its RSS counts, but not yet the pages of its parent's files: the
    libraries' code, which it maps as it runs, counts as growth here).
    """
    _release_free_memory()
    if _reset_peak_rss():
        workers = {pid: _proc_status_kib("VmRSS", pid) for pid in share_processes.worker_pids()
                   if _reset_peak_rss(pid)}
        start = _proc_status_kib("VmRSS")
        born_with = (_proc_status_kib("RssAnon") or 0) + (_proc_status_kib("RssShmem") or 0)
        fn()
        growth = _proc_status_kib("VmHWM") - start
        for pid in share_processes.worker_pids():
            growth += (_proc_status_kib("VmHWM", pid) or 0) - workers.get(pid, born_with)
        return growth / 1024
    try:
        import resource
    except ImportError:  # Windows
        fn()
        return None
    import sys
    unit = 1 if sys.platform == "darwin" else 1024              # bytes on macOS, KiB on Linux
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - start) * unit / 2**20


def library_versions() -> dict:
    """Versions of what the numbers depend on, for the JSON results."""
    import importlib
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "torch": torch.__version__ if torch is not None else None,
                "torch_threads": torch.get_num_threads() if torch is not None else None,
                "cpu_cores": _cpu_count(), "machine": platform.machine(),
                "processor": platform.processor() or None, "blas": None}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        versions["blas"] = f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:
        pass
    try:
        cupy = importlib.import_module("cupy")
        versions["cupy"] = cupy.__version__
        versions["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        versions["gpu"] = name.decode() if isinstance(name, bytes) else name
    except Exception:  # no CuPy, or no device
        versions.setdefault("cupy", None)
    if torch is not None and torch.cuda.is_available():
        versions["torch_cuda"] = torch.version.cuda
        versions.setdefault("gpu", torch.cuda.get_device_name(0))
    return versions


def gpu_stamp() -> str:
    """'GPU: <name>, CuPy <v>, PyTorch CUDA <v>', or '' where no GPU is usable."""
    versions = library_versions()
    if not versions.get("gpu"):
        return ""
    parts = [f"GPU: {versions['gpu']}"]
    if versions.get("cupy"):
        parts.append(f"CuPy {versions['cupy']} (CUDA runtime {versions.get('cuda_runtime')})")
    if versions.get("torch_cuda"):
        parts.append(f"PyTorch CUDA {versions['torch_cuda']}")
    return ", ".join(parts)


def threads_stamp() -> str:
    """How many threads the libraries may use: PyTorch's count and the environment variables.

    Both PyTorch (OpenMP) and OpenBLAS read OMP_NUM_THREADS at start-up; on a
    busy machine, OMP_NUM_THREADS=1 avoids threads waiting on each other.
    """
    settings = [f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                          "MKL_NUM_THREADS") if name in os.environ]
    torch_threads = f"PyTorch {torch.get_num_threads()} threads" if torch is not None else ""
    return ", ".join([part for part in [torch_threads] + settings if part]) or "default threads"
