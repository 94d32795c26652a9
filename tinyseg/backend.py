"""The backend switch: NumPy on the CPU, CuPy on a CUDA GPU.

This is the only module in tinyseg that knows CuPy exists. Every operator
asks it for the array module of its input,

    xp = get_array_module(x)      # numpy or cupy
    y = xp.exp(x)                 # the same line runs on either device

and then runs one code path on both devices (the idiom of Chainer and DeZero).

Devices are named as in PyTorch: "cpu" and "cuda". Nothing is ever copied
between devices behind your back: `to_device` is the one place that moves
data, and it only runs when you ask (`Tensor.to("cuda")`).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

import numpy as np

try:  # CuPy is optional: tinyseg works without it, on the CPU only.
    import cupy as cp
except Exception:  # ImportError, or a CuPy that cannot find its CUDA libraries
    cp = None

DEVICES = ("cpu", "cuda")
_default_device = "cpu"

INSTALL_HINT = (
    'install CuPy for your CUDA version with pip install "tinyseg[gpu]" '
    "(or e.g. pip install cupy-cuda12x) on a machine with an NVIDIA GPU"
)


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


def check_device(device: str) -> str:
    """Return `device` if it is a usable device name, else raise a clear error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not cuda_available():
        reason = "CuPy is not installed" if cp is None else "CuPy sees no CUDA device"
        raise RuntimeError(f"device 'cuda' is not usable: {reason}; {INSTALL_HINT}")
    return device


def set_default_device(device: str) -> None:
    """Choose where new tensors are created when no device is given."""
    global _default_device
    _default_device = check_device(device)


def get_default_device() -> str:
    return _default_device


def get_array_module(array) -> object:
    """numpy for a NumPy array (or anything else), cupy for a CuPy array."""
    if cp is not None and isinstance(array, cp.ndarray):
        return cp
    return np


def device_of(array) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if get_array_module(array) is not np else "cpu"


def is_array(obj) -> bool:
    """True for a NumPy or CuPy n-d array."""
    return isinstance(obj, np.ndarray) or (cp is not None and isinstance(obj, cp.ndarray))


def to_device(array, device: str):
    """Return `array` on `device`, copying between host and GPU only if needed."""
    check_device(device)
    if device_of(array) == device:
        return array
    if device == "cuda":
        return cp.asarray(array)
    return cp.asnumpy(array)


def to_numpy(array) -> np.ndarray:
    """A host (NumPy) copy or view of `array`."""
    return to_device(array, "cpu") if is_array(array) else np.asarray(array)


def as_strided(array, shape, strides, writeable: bool = False):
    """A strided view of `array` (strides in bytes, like NumPy's).

    NumPy and CuPy keep this function in different places; that is the only
    reason it lives here. Views are read-only unless `writeable` is asked for.
    """
    if get_array_module(array) is np:
        return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=writeable)
    return cp.lib.stride_tricks.as_strided(array, shape, strides)


def synchronize(device: str) -> None:
    """Wait until all queued work on `device` is done (a no-op on the CPU).

    GPU calls return before the work finishes; read a clock only after this.
    """
    if device == "cuda":
        cp.cuda.get_current_stream().synchronize()


# ----------------------------------------------------------------- the CPU's BLAS threads
OPENBLAS_THREAD_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                           "openblas_set_num_threads")
OPENBLAS_THREAD_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                           "openblas_get_num_threads")
_blas_threads = None            # (get, set) of NumPy's OpenBLAS, found on first use; () if none


def blas_thread_functions():
    """(get, set) for the number of threads NumPy's OpenBLAS runs a product on, or None.

    NumPy has no call for it; OpenBLAS has one, and NumPy's copy of OpenBLAS is
    already loaded, so it is found among the process's libraries (Linux's
    /proc/self/maps) and called through ctypes. None for another BLAS or system.
    """
    global _blas_threads
    if _blas_threads is None:
        _blas_threads = ()
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        except OSError:
            paths = set()
        for path in sorted(paths):
            library = ctypes.CDLL(path)
            getters = [getattr(library, name) for name in OPENBLAS_THREAD_GETTERS if hasattr(library, name)]
            setters = [getattr(library, name) for name in OPENBLAS_THREAD_SETTERS if hasattr(library, name)]
            if getters and setters:
                getters[0].restype = ctypes.c_int
                setters[0].argtypes = [ctypes.c_int]
                _blas_threads = (getters[0], setters[0])
                break
    return _blas_threads or None


_blas_lock = threading.Lock()   # blas_threads blocks may run at once on several threads:
_blas_blocks = 0                # how many are open now, and
_blas_before = None             # the setting before the first of them opened


@contextlib.contextmanager
def blas_threads(threads: int):
    """Inside the block NumPy's products run on `threads` threads (a no-op where they cannot be set).

    The setting is the process's: every thread's products take it while the block runs.
    Blocks opened at once on several threads share it, and the last to close puts back
    the setting from before the first opened (so two threads never restore each
    other's 1 and leave the process on one BLAS thread).
    """
    global _blas_blocks, _blas_before
    functions = blas_thread_functions()
    if functions is None:
        yield
        return
    get, set_threads = functions
    with _blas_lock:
        if _blas_blocks == 0:
            _blas_before = get()
        _blas_blocks += 1
        set_threads(threads)
    try:
        yield
    finally:
        with _blas_lock:
            _blas_blocks -= 1
            if _blas_blocks == 0:
                set_threads(_blas_before)


# ----------------------------------------------------------------- NumPy's ufunc buffer
BUFFER_STEP = 16                # NumPy takes buffer sizes in multiples of 16 numbers


@contextlib.contextmanager
def buffer_within_rows(xp, row_length: int):
    """Inside the block NumPy's ufunc buffer holds at most row_length numbers (a no-op for CuPy).

    Why: in y = x * v with x (C, L) and v (C, 1) broadcast along rows of L
    numbers, NumPy's iterator copies the operands, v spelled out, into its
    buffer (8192 numbers) wherever two rows or more fit there, to run longer
    loops. On rows of 256 to 4096 numbers that multiply took 2.6-3.8x the time
    of x * one number; with a buffer of one row nothing is copied, and it took
    1.1-2.0x (benchmarks/results/kernels.md). Only for broadcasts: a ufunc that
    converts types (float * bool) needs the buffer and runs slower with a
    small one. NumPy keeps the setting per thread, and the block puts it back.
    """
    if xp is not np or 2 * row_length > np.getbufsize():        # not two rows in the buffer: none copied
        yield
        return
    before = np.setbufsize(max(BUFFER_STEP, row_length - row_length % BUFFER_STEP))
    try:
        yield
    finally:
        np.setbufsize(before)


# ----------------------------------------------------------------- the CPU's freed memory
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3     # glibc's mallopt parameters (malloc.h)
KEEP_UP_TO = 2**31 - 1                          # bytes: the largest threshold mallopt takes (a C int)
THREAD_HEAP_BYTES = 2**26                       # glibc's heaps for threads other than the first: 64 MiB


def keep_freed_memory() -> bool:
    """Keep freed arrays' memory in the process for the next arrays (glibc); True where it is set.

    NumPy's arrays come from C's malloc. glibc maps a block above a threshold
    (128 KiB, rising as such blocks are freed, to 32 MiB at most) on pages of
    its own and hands them back to the OS when it is freed, and trims the top
    of its heap whenever more than twice that lies free there. A training step
    frees its activations at its end, so the next step's come back on fresh
    pages, which the OS zeroes and maps one page fault at a time. With both
    thresholds at 2 GiB, freed memory stays in the process for the next step.
    Measured (benchmarks/results/kernels.md): the U-Net step (batch 8) in
    0.88-1.00 of its time at 128x128, 0.67-0.90 at 256x256; the process's
    memory no longer falls between steps, and its peak moved by -1% to +16%.
    A thread other than the first (the data-parallel step's worker,
    sample_threads.py) allocates from an arena of its own, made of heaps of 64 MiB
    that glibc unmaps as soon as one is empty, thresholds or not; a top pad of
    64 MiB keeps them too (measured: the worker's 5,100-5,200 page faults a
    U-Net step with batch norm at 128x128 went, the step 0.93-1.03 of its time
    in nine pairs of processes, median 0.98).
    An array of 64 MiB or more fits no such heap: glibc maps it on its own, and
    in such a thread it still comes back on fresh pages. Processes forked
    after the call (the step's workers, share_processes.py) inherit the setting.

    The setting is the process's: the command line makes it (it owns its
    process); a program that imports tinyseg may call this too. Nothing is
    changed, and False returned, where C's library has no mallopt (not glibc)
    or refuses it.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):    # no C library to ask, or no mallopt in it
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return (bool(mallopt(M_MMAP_THRESHOLD, KEEP_UP_TO)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
            and bool(mallopt(M_TOP_PAD, THREAD_HEAP_BYTES)))
