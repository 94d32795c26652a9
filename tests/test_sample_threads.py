"""The batch cut over threads (tinyseg/functional/sample_threads.py) and the BLAS thread setting it uses."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg import backend
from tinyseg.functional import sample_threads


@given(n=st.integers(1, 50), workers=st.integers(1, 8))
def test_shares_cover_the_batch_in_order_and_differ_by_at_most_one(n, workers):
    shares = sample_threads.sample_shares(n, workers)
    assert len(shares) == min(n, workers)
    assert [i for start, stop in shares for i in range(start, stop)] == list(range(n))
    sizes = [stop - start for start, stop in shares]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), workers=st.integers(1, 3))
def test_each_sample_is_handled_once_and_the_parts_come_back_in_share_order(n, workers):
    seen, lock = [], threading.Lock()

    def work(start, stop):
        with lock:
            seen.extend(range(start, stop))
        return (start, stop)

    saved, sample_threads.WORKERS = sample_threads.WORKERS, workers
    try:
        parts = sample_threads.over_samples(work, n, sample_bytes=2**30)
    finally:
        sample_threads.WORKERS = saved
    assert sorted(seen) == list(range(n))
    expected = sample_threads.sample_shares(n, workers)
    if backend.blas_thread_functions() is None:          # no BLAS thread setting: one share
        expected = [(0, n)]
    assert parts == expected


def test_small_samples_and_unknown_blas_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(sample_threads, "WORKERS", 2)
    threads = []
    record = lambda start, stop: threads.append(threading.current_thread()) or (start, stop)  # noqa: E731
    assert sample_threads.over_samples(record, 8, sample_bytes=1) == [(0, 8)]
    monkeypatch.setattr(backend, "blas_thread_functions", lambda: None)
    assert sample_threads.over_samples(record, 8, sample_bytes=2**30) == [(0, 8)]
    assert threads == [threading.current_thread()] * 2


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

