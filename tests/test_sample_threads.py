"""The batch cut over threads (tinyseg/functional/sample_threads.py) and the BLAS thread setting it uses."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from unittest import mock

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg import Tensor, backend
from tinyseg import functional as F
from tinyseg.functional import sample_threads
from tinyseg.functional.concat import cat


@given(n=st.integers(1, 50), workers=st.integers(1, 8))
def test_shares_cover_the_batch_in_order_and_differ_by_at_most_one(n, workers):
    shares = sample_threads.sample_shares(n, workers)
    assert len(shares) == min(n, workers)
    assert [i for start, stop in shares for i in range(start, stop)] == list(range(n))
    sizes = [stop - start for start, stop in shares]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@given(start=st.integers(0, 20), count=st.integers(1, 30), sample_bytes=st.integers(1, 5000),
       group_bytes=st.integers(1, 20000))
def test_sample_groups_cover_the_share_in_order_each_within_the_group_bytes_or_one_sample(
        start, count, sample_bytes, group_bytes):
    stop = start + count
    with mock.patch.object(sample_threads, "GROUP_BYTES", group_bytes):
        groups = sample_threads.sample_groups(start, stop, sample_bytes)
    assert [i for first, last in groups for i in range(first, last)] == list(range(start, stop))
    sizes = [last - first for first, last in groups]
    assert min(sizes) >= 1 and sizes[0] == max(sizes)          # the first group is the largest
    assert all(size == 1 or size * sample_bytes <= group_bytes for size in sizes)
    assert all(size * sample_bytes > group_bytes - sample_bytes for size in sizes[:-1])   # none smaller


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), workers=st.integers(1, 3))
def test_each_sample_is_handled_once_and_the_parts_come_back_in_share_order(n, workers):
    seen, lock = [], threading.Lock()

    def work(start, stop):
        with lock:
            seen.extend(range(start, stop))
        return (start, stop)

    with mock.patch.object(sample_threads, "WORKERS", workers):
        parts = sample_threads.over_samples(work, np.zeros((n, 2**16)))
    assert sorted(seen) == list(range(n))
    expected = sample_threads.sample_shares(n, workers)
    if backend.blas_thread_functions() is None:          # no BLAS thread setting: one share
        expected = [(0, n)]
    assert parts == expected


def test_small_samples_and_unknown_blas_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(sample_threads, "WORKERS", 2)
    threads = []
    record = lambda start, stop: threads.append(threading.current_thread()) or (start, stop)  # noqa: E731
    assert sample_threads.over_samples(record, np.zeros((8, 1))) == [(0, 8)]
    monkeypatch.setattr(backend, "blas_thread_functions", lambda: None)
    assert sample_threads.over_samples(record, np.zeros((8, 2**16))) == [(0, 8)]
    assert threads == [threading.current_thread()] * 2


@settings(max_examples=30, deadline=None)
@given(sample_bytes=st.integers(1, 2**21), passes_only=st.booleans())
def test_a_batch_is_cut_only_where_its_samples_reach_the_least_bytes_for_its_kind_of_work(sample_bytes,
                                                                                          passes_only):
    """Products cut samples from MIN_SAMPLE_BYTES, passes over memory from MIN_PASS_SAMPLE_BYTES."""
    least = sample_threads.MIN_PASS_SAMPLE_BYTES if passes_only else sample_threads.MIN_SAMPLE_BYTES
    batch = np.zeros((4, sample_bytes), dtype=np.uint8)
    with mock.patch.object(sample_threads, "WORKERS", 2):
        parts = sample_threads.over_samples(lambda start, stop: (start, stop), batch, passes_only=passes_only)
    cut = sample_bytes >= least and backend.blas_thread_functions() is not None
    assert parts == ([(0, 2), (2, 4)] if cut else [(0, 4)])


def test_blas_threads_are_set_inside_the_block_and_restored_after():
    functions = backend.blas_thread_functions()
    if functions is None:
        with backend.blas_threads(1):                    # a no-op where they cannot be set
            pass
        return
    get, _ = functions
    before = get()
    with backend.blas_threads(1):
        assert get() == 1
    assert get() == before
    try:
        with backend.blas_threads(1):
            raise KeyError
    except KeyError:
        pass
    assert get() == before



# ----------------------------------------------------------------- the operators, cut over threads
def threads(workers: int):
    """Every batch cut over `workers` threads, however small its samples, inside the block."""
    return mock.patch.multiple(sample_threads, WORKERS=workers, MIN_SAMPLE_BYTES=0, MIN_PASS_SAMPLE_BYTES=0)


def value_and_gradient(op, x, gy):
    """(op(x), dL/dx for the output gradient gy), as arrays."""
    t = Tensor(x, requires_grad=True)
    y = op(t)
    y.backward(gy)
    return y.numpy(), t.grad


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(2, 6), st.integers(2, 6)),
       workers=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_the_operators_cut_over_threads_equal_their_one_thread_and_textbook_forms(shape, workers, seed):
    """relu (against Tensor.relu), cat (against one concatenate), max pooling (against one thread)
    and batch norm (against its textbook form): values and gradients, float64."""
    rng = np.random.default_rng(seed)
    x, other = rng.standard_normal(shape), rng.standard_normal(shape)
    pooled = (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    cases = [(F.relu, lambda t: t.relu(), shape),
             (lambda t: cat([t, Tensor(other)], axis=1),
              lambda t: Tensor(np.concatenate([t.data, other], axis=1)), None),
             (lambda t: F.max_pool2d(t, 2), None, pooled),
             (lambda t: F.batch_norm(t, None, None, training=True),
              lambda t: F.batch_norm_textbook(t, None, None, training=True), shape)]
    for threaded, reference, out_shape in cases:
        gy = rng.standard_normal(out_shape) if out_shape else None
        with threads(workers):
            got = value_and_gradient(threaded, x, gy) if gy is not None else (threaded(Tensor(x)).numpy(),)
        with threads(1):
            alone = value_and_gradient(threaded, x, gy) if gy is not None else (threaded(Tensor(x)).numpy(),)
        for a, b in zip(got, alone):                           # the same numbers on any number of threads
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        if reference is not None:
            want = value_and_gradient(reference, x, gy) if gy is not None else (reference(Tensor(x)).numpy(),)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_the_calling_thread_gets_its_cpus_back_after_the_shares_ran():
    before = sample_threads.os.sched_getaffinity(0) if sample_threads.PINNING else None
    with threads(2):
        sample_threads.over_samples(lambda start, stop: None, np.zeros((4, 8)))
    if sample_threads.PINNING:
        assert sample_threads.os.sched_getaffinity(0) == before


@settings(max_examples=20, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(2, 4), st.integers(1, 5), st.integers(1, 5)),
       workers=st.integers(2, 3), ignore=st.booleans(), seed=st.integers(0, 2**16))
def test_cross_entropy_cut_over_threads_equals_its_textbook_form(shape, workers, ignore, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    if ignore:
        target[rng.random(target.shape) < 0.3] = 255
    target.flat[0] = 0                                     # at least one pixel counts
    fused = lambda t: F.cross_entropy(t, target, ignore_index=255)            # noqa: E731
    textbook = lambda t: F.cross_entropy_textbook(t, target, ignore_index=255)  # noqa: E731
    with threads(workers):
        got = value_and_gradient(fused, x, None)
    want = value_and_gradient(textbook, x, None)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------- safe beside other threads and processes
@given(omp=st.one_of(st.none(), st.sampled_from(["", "0", "x", "-3"]), st.integers(1, 64).map(str)),
       openblas=st.one_of(st.none(), st.integers(1, 64).map(str)))
def test_the_thread_count_is_one_per_cpu_at_most_the_limit_the_user_set(omp, openblas):
    environ = {name: value for name, value in [("OMP_NUM_THREADS", omp), ("OPENBLAS_NUM_THREADS", openblas)]
               if value is not None}
    limits = [int(v) for v in environ.values() if v.isdigit() and int(v) >= 1]
    assert sample_threads.thread_count(environ) == min([len(sample_threads.CPUS)] + limits)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(2, 9), inner=st.integers(2, 9))
def test_a_share_that_cuts_a_batch_again_runs_it_on_its_own_thread(n, inner):
    """A worker waiting on work queued behind itself would hang; the inner batch runs where it is."""
    seen, lock = [], threading.Lock()

    def outer(start, stop):
        here = threading.current_thread()
        inner_threads = sample_threads.over_samples(lambda a, b: threading.current_thread(),
                                                    np.zeros((inner, 2**16)))
        assert inner_threads == [here]
        with lock:
            seen.extend(range(start, stop))

    with threads(2):
        sample_threads.over_samples(outer, np.zeros((n, 4)))
    assert sorted(seen) == list(range(n))


@settings(max_examples=10, deadline=None)
@given(callers=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_blas_blocks_open_at_once_on_several_threads_restore_the_setting_from_before(callers, seed):
    functions = backend.blas_thread_functions()
    before = functions[0]() if functions else None
    delays = np.random.default_rng(seed).uniform(0, 0.004, (callers, 2))
    start = threading.Barrier(callers)

    def caller(k):
        start.wait()
        time.sleep(delays[k, 0])
        with backend.blas_threads(1):
            time.sleep(delays[k, 1])                     # the blocks overlap in drawn orders

    workers = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if functions:
        assert functions[0]() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_cuts_its_batches_over_threads_of_its_own():
    with threads(2):
        sample_threads.over_samples(lambda start, stop: None, np.zeros((4, 8)))   # the pool exists
        pid = os.fork()
        if pid == 0:                                     # the child: the parent's worker is not here
            done = threading.Event()
            threading.Thread(target=lambda: (sample_threads.over_samples(lambda a, b: (a, b),
                                                                         np.zeros((4, 8))),
                                             done.set()), daemon=True).start()
            os._exit(0 if done.wait(10) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not sample_threads.PINNING or len(sample_threads.CPUS) < 2, reason="needs two CPUs")
def test_a_thread_the_user_held_to_other_cpus_is_left_there():
    mine = {sample_threads.CPUS[-1]}
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, mine)                        # as `taskset` would, after tinyseg was imported
    try:
        with sample_threads.on_cpu(sample_threads.CPUS[0]):
            assert os.sched_getaffinity(0) == mine
        with threads(2):
            sample_threads.over_samples(lambda start, stop: None, np.zeros((4, 8)))
        assert os.sched_getaffinity(0) == mine
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.skipif(not sample_threads.PINNING or len(sample_threads.CPUS) < 2, reason="needs two CPUs")
def test_each_share_runs_on_a_cpu_of_its_own():
    """The workers are started inside the block that holds the calling thread to CPUS[0]."""
    if sample_threads._pool is not None:
        sample_threads._pool.shutdown()
    sample_threads.forget_pool()                         # workers started by this call
    with threads(2):
        cpus = sample_threads.over_samples(lambda start, stop: os.sched_getaffinity(0), np.zeros((4, 8)))
    assert cpus == [{sample_threads.CPUS[0]}, {sample_threads.CPUS[1]}]


def operand(rng, rows: int, cols: int, dtype, layout: str):
    """A (rows, cols) array laid out as given: C order, its transpose's view, or a slice of a wider buffer."""
    if layout == "transposed":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    if layout == "sliced":
        return rng.standard_normal((rows, cols + 7)).astype(dtype)[:, 3:3 + cols]
    return rng.standard_normal((rows, cols)).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 40),
       layouts=st.tuples(*[st.sampled_from(["C", "transposed", "sliced"])] * 2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_matmul_without_gil_equals_matmul_on_either_side_of_the_threshold(m, k, n, layouts, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = operand(rng, m, k, dtype, layouts[0]), operand(rng, k, n, dtype, layouts[1])
    product = sample_threads.matmul_without_gil(a, b)
    assert product.shape == (m, n) and product.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(product, a @ b, rtol=tolerance, atol=tolerance * np.sqrt(k))


@settings(max_examples=15, deadline=None)
@given(m=st.integers(23, 60), n=st.integers(23, 60), seed=st.integers(0, 2**16))
def test_matmul_without_gil_copies_no_operand_where_matmul_lets_go_of_the_gil(m, n, seed):
    # Above the threshold the product is matmul's, which reads sliced operands as they lie;
    # np.dot would copy each of them first (the band's columns are slices of a buffer).
    rng = np.random.default_rng(seed)
    k = 20_000
    a, b = operand(rng, m, k, np.float32, "sliced"), operand(rng, n, k, np.float32, "sliced").T
    assert m * n > sample_threads.MATMUL_KEEPS_GIL_UP_TO
    tracemalloc.start()
    try:
        sample_threads.matmul_without_gil(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * m * n + 2**16                                  # the (m, n) output, no (m, k) copy
