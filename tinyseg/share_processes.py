"""The shares of a training step in processes of their own, so that the cores run Python at once.

data_parallel.py gives each core a share of the batch for the whole step. In
threads of one process the shares take turns at Python's lock (the GIL): each
NumPy call lets go of it and takes it back when done, and if the other share
holds it then, the caller sleeps until it is let go and the caller woken. On
the 2-core Intel Xeon measured, a virtual machine where a sleeping core takes
about 45 us to wake, each share spent 10% of the U-Net step so waiting
(benchmarks/results/kernels.md). Each process has a lock of its own. So here
share 0 runs in the calling process and every other share in a worker
process, started once by fork (Linux): a copy of the model whose arrays
(weights and running statistics) lie in memory it shares with the caller,
who copies its own into them before each step (2 MB for the U-Net: well
under a millisecond). The caller's arrays stay where they are.

    results = run_step(model, step, shares, own_step, arguments)
    # the first time: a worker forked for each share but the first, its model's arrays in shared
    # memory; each step: the caller's arrays copied there, then [(loss, gradients)] of each share

A step sends each worker its samples (and the rest of `arguments`) through a
pipe; the worker runs step(model, weights, *those arguments) and puts the
gradients into shared memory, the loss into the pipe. Batch norm's meetings
(sample_threads.whole_batch) go through the same pipes: each worker sends its
rows and waits; the caller gathers every share's rows in share order and sends
them the whole batch's.

What a worker holds is the model as it was when it started: run_step starts
the workers again whenever the model has changed since (fingerprint): its
parameters and buffers (which, and their shapes and dtypes), requires_grad,
modules, or a module's settings (training, stride, ...: its attributes that are numbers,
strings or tuples of them; of any other, which object it is). What is not
seen is a change INSIDE such an object (a list changed in place). A model
that changes before every step gets new workers at every step, which is
slow; after RESTARTS_TOLD steps in a row a warning names what changed. A share
that fails, or a worker that dies, ends the workers (the next step starts new
ones) and its error is raised here.
A worker ignores Ctrl-C (the caller's to handle) and ends when the caller's
end of its pipe closes. Where the system refuses a fork, ForkRefused is raised
before any share runs (data_parallel.py then runs the shares on threads).

Memory: a worker holds its share's arrays, as a thread did, and the pages it
writes or maps of its own (fork shares the caller's until then): 16-17 MiB more
for the U-Net step's first step on the Xeon measured; train.py ends the workers
after each epoch (end), and the benchmarks count their growth with the caller's.
"""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import pickle
import signal
import sys
import threading
import warnings

import numpy as np

from tinyseg import backend
from tinyseg.functional import sample_threads
from tinyseg.nn.module import Module
from tinyseg.tensor import Tensor

AVAILABLE = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
_current = None                     # the ShareProcesses of the model trained last
_restarts = 0                       # steps in a row that found that model changed since the last one
RESTARTS_TOLD = 3                   # after this many, a warning names what keeps changing
_lock = threading.Lock()            # one step at a time uses them (two threads may train two models)
PLAIN = (bool, int, float, str, type(None))     # settings compared by value (others: by which object)


def run_step(model, step, shares: list, own_step, arguments) -> list:
    """ShareProcesses.run on the workers for `model`: those of the last step if they still hold it
    and are enough for these shares (ShareProcesses.holds), else new ones, one for each share but
    the first (no more: a batch smaller than the cores leaves no worker idle)."""
    global _current, _restarts
    with _lock:
        changed = None
        if _current is not None and not _current.holds(model, len(shares) - 1):
            changed = what_changed(model, _current.fingerprint) if model is _current.model else None
            _current.close()
        _restarts = _restarts + 1 if changed else 0
        if _restarts == RESTARTS_TOLD:
            warnings.warn(f"the model changed ({changed}) before each of the last {RESTARTS_TOLD} "
                          f"training steps, and each change starts its worker processes anew, "
                          f"which is slow: keep what changes at every step out of the modules' "
                          f"attributes", RuntimeWarning)
        if _current is None:
            _current = ShareProcesses(model, len(shares) - 1, step)
        return _current.run(shares, own_step, arguments)


def end() -> None:
    """End the workers of the last model trained, if any (train.py does after each epoch): their
    memory goes back to the system."""
    with _lock:
        if _current is not None:
            _current.close()


def worker_pids() -> list:
    """The process ids of the workers now running (benchmarks add their memory to the caller's)."""
    return [] if _current is None else [process.pid for process, _, _ in _current.workers]


def shared_copy(array) -> np.ndarray:
    """A copy of a NumPy array in memory shared with the processes forked after (an anonymous mmap)."""
    buffer = mmap.mmap(-1, max(array.nbytes, 1))
    copy = np.frombuffer(buffer, dtype=array.dtype, count=array.size).reshape(array.shape)
    copy[...] = array
    return copy


def tensors_of(model) -> list:
    """The model's parameters, then its buffers (running statistics): what a worker's copy reads."""
    return [t for t in list(model.parameters()) + list(model.buffers()) if t is not None]


def fingerprint(model) -> tuple:
    """What a worker's copy of the model must agree on: its modules and their settings, and its
    parameters and buffers: which they are, and each one's shape, dtype and requires_grad (their
    values are copied to the workers at every step)."""
    return (tuple((id(m), settings(m)) for m in model.modules()),
            tuple((id(t), t.requires_grad, t.data.shape, t.data.dtype.str) for t in tensors_of(model)))


def settings(module) -> tuple:
    """A module's own attributes but its tensors and child modules (training, stride, ...): the
    value of each number, string or tuple of them, and which object any other is."""
    def plain(value):
        return isinstance(value, PLAIN) or (isinstance(value, tuple)
                                            and all(isinstance(v, PLAIN) for v in value))

    return tuple((name, value if plain(value) else id(value)) for name, value in vars(module).items()
                 if not isinstance(value, (Tensor, Module)))


def what_changed(model, before: tuple) -> str | None:
    """What differs in `model` from its fingerprint `before`, in words ("decoder.0.eps", "an array
    or requires_grad"), or None where nothing does."""
    modules = list(model.named_modules())
    if len(modules) != len(before[0]):
        return "its modules"
    for (name, module), (_, old) in zip(modules, before[0]):
        now = settings(module)
        if now != old:
            first = sorted({attribute for attribute, _ in set(now) ^ set(old)})[0]
            return f"{name}.{first}" if name else first
    return None if fingerprint(model) == before else "a parameter, buffer or requires_grad"


class ForkRefused(Exception):
    """A worker process could not be started (fork failed): the step can run its shares on threads."""


class ShareProcesses:
    """`count` worker processes, each holding `model` (its arrays shared with this process) and
    running step(model, weights, *arguments) for one share of each batch; see the module's docstring."""

    def __init__(self, model, count: int, step):
        self.model, self.count = model, count
        self.fingerprint = fingerprint(model)
        self.weights = [p for p in model.parameters() if p.requires_grad]
        self.arrays = [shared_copy(t.data) for t in tensors_of(model)]     # the workers' model's arrays
        self.workers = []                               # (process, connection, gradient buffers)
        try:
            for k in range(count):
                self.workers.append(self.start_worker(k, step))
        except BaseException:                           # fork refused (no memory, say): none left behind
            self.close(wait=0)
            raise

    def start_worker(self, k: int, step) -> tuple:
        """Fork worker k (share k + 1, on the CPU after this process's): (process, our connection, its
        gradient buffers in shared memory)."""
        context = multiprocessing.get_context("fork")
        grads = [shared_copy(np.zeros_like(p.data)) for p in self.weights]
        ours, theirs = context.Pipe()
        cpu = sample_threads.CPUS[(k + 1) % len(sample_threads.CPUS)]
        ours_so_far = [connection for _, connection, _ in self.workers] + [ours]
        process = context.Process(target=serve, name=f"tinyseg-share-{k + 1}", daemon=True,
                                  args=(theirs, ours_so_far, self.model, self.arrays, self.weights, grads,
                                        step, cpu))
        try:
            with warnings.catch_warnings():             # Python 3.12 warns of fork in a process with
                warnings.simplefilter("ignore", DeprecationWarning)    # threads (ours wait, idle)
                process.start()
        except OSError as error:                        # no memory for it, a limit on processes
            ours.close()
            raise ForkRefused(f"the system refused a worker process for the training step ({error})") from error
        finally:
            theirs.close()
        return process, ours, grads

    def holds(self, model, count: int) -> bool:
        """The workers are alive and hold `model` as it is now, and there are `count` of them or more
        (an epoch's last, smaller batch uses the first ones)."""
        return (model is self.model and count <= self.count and fingerprint(model) == self.fingerprint
                and all(process.is_alive() for process, _, _ in self.workers))

    def run(self, shares: list, own_step, arguments) -> list:
        """[(loss, gradients)] of every share in order: share 0 by own_step() here, share k > 0 by a
        worker given arguments(start, stop). shares: [(start, stop), ...], at most count + 1."""
        busy = self.workers[:len(shares) - 1]
        for shared, tensor in zip(self.arrays, tensors_of(self.model)):
            shared[...] = tensor.data                   # the weights as the optimizer left them
        try:
            for (_, connection, _), (start, stop) in zip(busy, shares[1:]):
                connection.send(("step", start, arguments(start, stop)))
            meetings = GatheringMeetings([(process, connection) for process, connection, _ in busy], shares)
            with sample_threads.meeting_as(meetings, 0):
                results = [own_step()]
            for process, connection, grads in busy:
                loss, present = receive(connection, process, "done")
                results.append((loss, [g.copy() if there else None for g, there in zip(grads, present)]))
            return results
        except BaseException:
            self.close(wait=0)                          # a worker may wait at a meeting: end them all
            raise

    def close(self, wait: float = 1.0) -> None:
        """End the workers: close our ends of their pipes (a worker waiting for a step then ends), and
        kill any still running after `wait` seconds."""
        global _current
        for process, connection, _ in self.workers:
            connection.close()
            process.join(timeout=wait)
            if process.is_alive():
                process.kill()
                process.join()
        self.workers = []
        if _current is self:
            _current = None


def receive(connection, process, expected: str):
    """The next message from a worker, which must be `expected`; a worker's error is raised here."""
    try:
        kind, *body = connection.recv()
    except (EOFError, OSError):
        process.join(timeout=1)
        raise RuntimeError(f"the training step's worker process {process.name} ended (exit code "
                           f"{process.exitcode}); the next step starts a new one") from None
    if kind == "error":
        raise body[0]
    if kind != expected:
        raise RuntimeError(f"{process.name} sent {kind!r} where {expected!r} was due: the shares are "
                           f"out of step")
    return body


class GatheringMeetings:
    """Batch norm's meetings on the calling process's side (sample_threads.whole_batch calls join):
    every worker's rows, gathered in share order with this share's, sent back to each whole."""

    def __init__(self, workers: list, shares: list):
        self.workers, self.shares = workers, shares          # [(process, connection)], [(start, stop)]

    def join(self, meeting: int, part, start: int):
        xp = backend.get_array_module(part)
        whole = xp.empty((self.shares[-1][1],) + part.shape[1:], dtype=part.dtype)
        whole[start:start + len(part)] = part
        for (process, connection), (first, stop) in zip(self.workers, self.shares[1:]):
            number, rows = receive(connection, process, "meet")
            if number != meeting:
                raise RuntimeError(f"{process.name} came to meeting {number} where this share came to "
                                   f"{meeting}")
            whole[first:stop] = rows
        for _, connection in self.workers:
            connection.send(("whole", whole))
        return whole


class CallerGone(Exception):
    """The caller closed its end of a worker's pipe (it failed, or ended the workers)."""


class WorkerMeetings:
    """Batch norm's meetings on a worker's side: send this share's rows, wait for the whole batch's."""

    def __init__(self, connection):
        self.connection = connection

    def join(self, meeting: int, part, start: int):
        try:
            self.connection.send(("meet", meeting, part))
            _, whole = self.connection.recv()            # ("whole", the batch's rows)
        except (EOFError, OSError):
            raise CallerGone() from None
        return whole


def serve(connection, callers_ends: list, model, arrays: list, weights, grads, step, cpu: int) -> None:
    """A worker's life: one share's step for each message, until the caller closes the pipe.

    callers_ends: the caller's ends of the pipes so far, which fork copied into this process; closed
    here, so that a worker's pipe ends (and it reads EOF) when the caller closes its end. arrays: the
    shared memory the caller copies its model's arrays into before each step; this process's copy
    of the model reads them there.
    """
    for end in callers_ends:
        end.close()
    for tensor, shared in zip(tensors_of(model), arrays):
        tensor.data = shared                            # in this process only
    gc.freeze()                     # the caller's objects: the collector leaves them, and their pages shared
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C stops the caller, which ends us
    sample_threads.pin_to(cpu)
    sample_threads.WORKERS = 1                          # this process runs its share on one core
    with backend.blas_threads(1):
        while True:
            try:
                _, start, arguments = connection.recv()   # ("step", the share's first sample, ...)
                serve_one(connection, model, weights, grads, step, start, arguments)
            except (EOFError, OSError, CallerGone):     # the caller closed its end: we are done
                return


def serve_one(connection, model, weights, grads, step, start: int, arguments) -> None:
    """One share's step: its gradients into the shared buffers, ("done", loss, which are there) or
    ("error", what went wrong) into the pipe."""
    try:
        with sample_threads.meeting_as(WorkerMeetings(connection), start):
            loss, found = step(model, weights, *arguments)
    except CallerGone:
        raise
    except Exception as error:                          # sent to the caller, which raises it
        connection.send(("error", picklable(error)))
        return
    for buffer, g in zip(grads, found):
        if g is not None:
            buffer[...] = g
    connection.send(("done", loss, [g is not None for g in found]))


def picklable(error: Exception) -> Exception:
    """`error` itself where it survives the pipe, else a RuntimeError that tells it."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
