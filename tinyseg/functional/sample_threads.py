"""A batch cut in shares, one per core: the CPU kernels' per-sample loops run on threads.

    parts = over_samples(work, x)      # [work(0, 4), work(4, 8)] for an x of 8 samples on 2 cores

Why: on a 2-core Intel Xeon, a product on columns one core has just copied
runs no faster on two BLAS threads than on one, because the second core reads
them out of the first one's cache; two threads that each copy and multiply
their own samples, their BLAS on one thread each, keep their data in their
own core's cache (measured: benchmarks/results/kernels.md). NumPy releases
the GIL inside its copies, ufuncs and products, so Python threads run them
at once; except `a @ b` (matmul) where its output has 500 numbers or fewer
(matmul_without_gil says why and what the kernels use instead).

`work(start, stop)` handles samples start .. stop - 1 and writes only their
part of any shared output; what it returns (a partial sum, say) is handed
back in share order, so results do not depend on which thread ran first.

Share k runs on CPU k: each worker thread is pinned to its own CPU, and the
calling thread to the first one while the shares run (its own CPUs are given
back after). Why: a thread woken by another is often put on the waker's CPU,
so after an idle moment both shares ran on one core until the scheduler moved
one (measured in benchmarks/results/kernels.md).

Handing a share to the worker and waiting for it back costs about 90 us on
the 2-core Intel Xeon measured. Work that is only passes over memory
(ReLU, max pooling, batch norm: no product) gains less from the second core,
so its samples are cut only from MIN_PASS_SAMPLE_BYTES (512 KiB) on; smaller
ones run on the calling thread (over_samples(..., passes_only=True)). A whole
training step for a share of the batch (data_parallel.py) pays one hand-over
a step, and is cut at any sample size (whole_steps=True).

A batch is cut over one thread per CPU the process may use, or fewer where
OMP_NUM_THREADS or OPENBLAS_NUM_THREADS says so (the limit a user sets for
NumPy's BLAS limits these threads too; =1 runs everything on one thread).
Measured on 2-core machines only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from tinyseg import backend

PINNING = hasattr(os, "sched_setaffinity")          # Linux: a thread can be held to one CPU
CPUS = sorted(os.sched_getaffinity(0)) if PINNING else list(range(os.cpu_count() or 1))
MIN_SAMPLE_BYTES = 2**16                # below this much data per sample, one thread does it all
MIN_PASS_SAMPLE_BYTES = 2**19           # the same for work that is only passes over memory (no product):
                                        # a hand-over to the worker and back costs about 90 us, more than
                                        # a second core saves on smaller samples (benchmarks/results/kernels.md)
MATMUL_KEEPS_GIL_UP_TO = 500            # NumPy's matmul keeps the GIL through a product of this
                                        # many output numbers or fewer
GROUP_BYTES = 2**20                     # a share's passes over memory take samples smaller than this
                                        # in groups of up to this much data (sample_groups)
_pool = None                            # the threads, started on first use
_in_share = threading.local()           # .active: this thread is running a share now


def thread_count(environ=os.environ) -> int:
    """One thread per usable CPU, at most the OMP_NUM_THREADS or OPENBLAS_NUM_THREADS set."""
    count = len(CPUS)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            count = min(count, int(value))
    return max(1, count)


WORKERS = thread_count()                # threads a batch is cut over


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


def over_samples(work, batch, passes_only: bool = False, whole_steps: bool = False) -> list:
    """[work(start, stop) for each share of range(len(batch))], run at once, BLAS on one thread each.

    batch: the (N, ...) array whose samples are cut. One share on this thread,
    with the BLAS's own threads, for a batch of one, one core, a GPU array, a
    sample of fewer than MIN_SAMPLE_BYTES (MIN_PASS_SAMPLE_BYTES where the
    caller says its work is passes_only: elementwise maps and sums, no
    product; no least size where it is whole_steps: a training step's forward
    and backward), or where NumPy's BLAS threads cannot be set
    (backend.blas_thread_functions).
    """
    n = len(batch)
    shares = shares_of(batch, passes_only, whole_steps)
    if len(shares) == 1:
        return [work(0, n)]
    with backend.blas_threads(1), on_cpu(CPUS[0]):
        futures = [pool().submit(run_share, work, start, stop) for start, stop in shares[1:]]
        try:
            first = run_share(work, *shares[0])          # this thread takes the first share
        finally:
            rest = [future.result() for future in futures]   # all done before the block ends
    return [first] + rest


def shares_of(batch, passes_only: bool = False, whole_steps: bool = False) -> list[tuple[int, int]]:
    """The (start, stop) shares over_samples cuts `batch` into (its docstring says when one)."""
    n = len(batch)
    shares = sample_shares(n, WORKERS)
    least = 0 if whole_steps else MIN_PASS_SAMPLE_BYTES if passes_only else MIN_SAMPLE_BYTES
    if (len(shares) == 1 or batch[0].nbytes < least or backend.device_of(batch) != "cpu"
            or backend.blas_thread_functions() is None or getattr(_in_share, "active", False)):
        return [(0, n)]                                  # (a share never cuts its samples again)
    return shares


def sample_groups(start: int, stop: int, sample_bytes: int) -> list[tuple[int, int]]:
    """Samples start..stop-1 in consecutive (first, last) groups of at most GROUP_BYTES of data, one
    sample at least: the steps of a share's loop of passes over memory (batch norm's).

    Why: a share runs its passes one sample at a time, in cache, but on small samples each NumPy
    call is short, and each lets go of Python's lock (the GIL). Two threads running the same
    operator at once (the shares of a whole step, data_parallel.py, in step after each of batch
    norm's meetings) then hand the lock to and fro, and each hand-over waits for a thread to wake.
    Small samples taken together, still in cache, make fewer and longer calls (measured:
    benchmarks/results/kernels.md).
    """
    size = max(1, GROUP_BYTES // max(1, sample_bytes))
    return [(first, min(first + size, stop)) for first in range(start, stop, size)]


def in_order_sum(parts):
    """parts[0] + parts[1] + ..., in share order (so a result does not depend on the threads' timing)."""
    return sum(parts[1:], parts[0])


def matmul_without_gil(a, b):
    """a @ b for 2-d a and b, with Python's lock (the GIL) let go during the product at any size.

    NumPy's matmul keeps the GIL through a product whose output has
    MATMUL_KEEPS_GIL_UP_TO numbers or fewer, however long the product takes:
    a weight gradient (K, L) @ (L, O) of a 3-channel first layer, (27, 16)
    summed over 16,640 pixels, held the other share up for the whole product
    (measured: benchmarks/results/kernels.md). np.dot lets go of the GIL at
    any size, but first copies an operand that is neither C- nor F-contiguous
    (a slice of a band's buffer; matmul reads it as it lies), so it is taken
    for those small outputs only.
    """
    if a.shape[0] * b.shape[1] > MATMUL_KEEPS_GIL_UP_TO:
        return a @ b
    return backend.get_array_module(a).dot(a, b)


class BatchMeetings:
    """Where the shares of one batch meet while each runs a whole training step (data_parallel.py).

    An operator that needs the whole batch (batch norm's sums over every sample)
    hands in its share's rows (whole_batch) and waits until every share has;
    each then reads the same (N, ...) array, the rows in sample order, so every
    share computes the same numbers from it, those of a batch in one piece.
    The shares must all run at once, as over_samples runs them (its pool has a
    thread for each share but the first, which the calling thread runs).
    Shares in processes of their own meet through pipes instead
    (share_processes.py: GatheringMeetings and WorkerMeetings, the same join).
    """

    def __init__(self, shares: list):
        self.shares = shares                             # [(start, stop), ...], as shares_of cut them
        self.barrier = threading.Barrier(len(shares))
        self.joined = {}                                 # meeting number -> the (N, ...) array filled
        self.lock = threading.Lock()

    def join(self, meeting: int, part, start: int):
        """The (N, ...) array of every share's rows at this meeting, `part` at rows start.. among them."""
        with self.lock:                                  # the first share to come makes it
            if meeting not in self.joined:
                n = self.shares[-1][1]
                xp = backend.get_array_module(part)
                self.joined[meeting] = xp.empty((n,) + part.shape[1:], dtype=part.dtype)
            whole = self.joined[meeting]
        whole[start:start + len(part)] = part
        self.barrier.wait()                              # every share's rows are in
        return whole

    def abort(self) -> None:
        """A share failed: the others, waiting at a meeting or coming to one, get BrokenBarrierError."""
        self.barrier.abort()


@contextlib.contextmanager
def meeting_as(meetings: BatchMeetings, start: int):
    """Inside the block, this thread is the share from sample `start` of a batch meeting at `meetings`."""
    _in_share.meetings, _in_share.start, _in_share.meeting = meetings, start, 0
    try:
        yield
    finally:
        _in_share.meetings = None


def whole_batch(part):
    """`part`, the (n, ...) rows of this thread's samples, with the other shares' rows: the (N, ...)
    rows of the whole batch where it runs in shares through the whole step (data_parallel.py),
    else `part` itself. Every share calls it equally often, in the same order (the same
    operators of the same model do)."""
    meetings = getattr(_in_share, "meetings", None)
    if meetings is None:
        return part
    _in_share.meeting += 1
    return meetings.join(_in_share.meeting, part, _in_share.start)


def updates_kept_state() -> bool:
    """Whether this thread updates what is kept between steps (batch norm's running estimates):
    False in all but the first share of a batch that runs in shares through the whole step."""
    return getattr(_in_share, "meetings", None) is None or _in_share.start == 0


def run_share(work, start: int, stop: int):
    """work(start, stop), marked as a share: an over_samples inside it runs on this thread alone.

    Why: a worker that waited for work queued behind itself would wait forever.
    """
    _in_share.active = True
    try:
        return work(start, stop)
    finally:
        _in_share.active = False


@contextlib.contextmanager
def on_cpu(cpu: int):
    """The calling thread runs on `cpu` inside the block, on the CPUs it had before after it.

    Left where it is if it may not run on `cpu` (a user's taskset, say).
    """
    before = os.sched_getaffinity(0) if PINNING else set()   # 0: the calling thread, on Linux
    if cpu not in before:
        yield
        return
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

        def pin() -> None:                               # (it starts with its creator's CPUs)
            pin_to(CPUS[next(next_cpu) % len(CPUS)])

        _pool = ThreadPoolExecutor(max(1, WORKERS - 1), thread_name_prefix="tinyseg-samples",
                                   initializer=pin)
    return _pool


def pin_to(cpu: int) -> None:
    """Hold the calling thread to `cpu` from now on (a pool's worker, or the step's worker process,
    share_processes.py); left unpinned where it may not run there (a CPU taken away since import,
    a user's taskset)."""
    if PINNING:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def forget_pool() -> None:
    """In a forked child: the parent's worker threads do not exist there, so start new ones."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_pool)
