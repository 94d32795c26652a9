"""A batch cut in shares, one per core: the CPU kernels' per-sample loops run on threads.

    parts = over_samples(work, x)      # [work(0, 4), work(4, 8)] for an x of 8 samples on 2 cores

Why: on a 2-core Intel Xeon, a product on columns one core has just copied
runs no faster on two BLAS threads than on one, because the second core reads
them out of the first one's cache; two threads that each copy and multiply
their own samples, their BLAS on one thread each, keep their data in their
own core's cache (measured: benchmarks/results/kernels.md). NumPy releases
the GIL inside its copies, ufuncs and products, so Python threads run them
at once.

`work(start, stop)` handles samples start .. stop - 1 and writes only their
part of any shared output; what it returns (a partial sum, say) is handed
back in share order, so results do not depend on which thread ran first.

Share k runs on CPU k: each worker thread is pinned to its own CPU, and the
calling thread to the first one while the shares run (its own CPUs are given
back after). Why: a thread woken by another is often put on the waker's CPU,
so after an idle moment both shares ran on one core until the scheduler moved
one (measured in benchmarks/results/kernels.md).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

from tinyseg import backend

PINNING = hasattr(os, "sched_setaffinity")          # Linux: a thread can be held to one CPU
CPUS = sorted(os.sched_getaffinity(0)) if PINNING else list(range(os.cpu_count() or 1))
WORKERS = min(2, len(CPUS))             # threads a batch is cut over (the machines measured had 2 cores)
MIN_SAMPLE_BYTES = 2**16                # below this much data per sample, one thread does it all
_pool = None                            # the threads, started on first use


def sample_shares(n: int, workers: int) -> list[tuple[int, int]]:
    """range(n) in up to `workers` consecutive (start, stop) shares, the first ones one larger."""
    workers = max(1, min(workers, n))
    size, extra = divmod(n, workers)
    shares, start = [], 0
    for k in range(workers):
        stop = start + size + (k < extra)
        shares.append((start, stop))
        start = stop
    return shares


def over_samples(work, batch) -> list:
    """[work(start, stop) for each share of range(len(batch))], run at once, BLAS on one thread each.

    batch: the (N, ...) array whose samples are cut. One share on this thread,
    with the BLAS's own threads, for a batch of one, one core, a GPU array, a
    sample of fewer than MIN_SAMPLE_BYTES, or where NumPy's BLAS threads
    cannot be set (backend.blas_thread_functions).
    """
    n = len(batch)
    shares = sample_shares(n, WORKERS)
    if (len(shares) == 1 or batch[0].nbytes < MIN_SAMPLE_BYTES or backend.device_of(batch) != "cpu"
            or backend.blas_thread_functions() is None):
        return [work(0, n)]
    with backend.blas_threads(1), on_cpu(CPUS[0]):
        futures = [pool().submit(work, start, stop) for start, stop in shares[1:]]
        try:
            first = work(*shares[0])                     # this thread takes the first share
        finally:
            rest = [future.result() for future in futures]   # all done before the block ends
    return [first] + rest


@contextlib.contextmanager
def on_cpu(cpu: int):
    """The calling thread runs on `cpu` inside the block, on the CPUs it had before after it."""
    if not PINNING:
        yield
        return
    before = os.sched_getaffinity(0)                     # 0: the calling thread, on Linux
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pool() -> ThreadPoolExecutor:
    """The worker threads (WORKERS - 1 of them: the calling thread takes a share too), each on its CPU."""
    global _pool
    if _pool is None:
        next_cpu = itertools.count(1)                    # CPUS[0] is the calling thread's

        def pin() -> None:
            if PINNING:
                os.sched_setaffinity(0, {CPUS[next(next_cpu) % len(CPUS)]})

        _pool = ThreadPoolExecutor(max(1, WORKERS - 1), thread_name_prefix="tinyseg-samples",
                                   initializer=pin)
    return _pool
