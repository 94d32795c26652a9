"""The backend switch: array modules, the default device, moving tensors, and the GPU hint."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinyseg
from tinyseg import Tensor, backend, cli

needs_no_gpu = pytest.mark.skipif(tinyseg.cuda_available(), reason="a usable CUDA device is present")


def test_get_array_module_of_numpy_arrays_and_other_things_is_numpy():
    assert tinyseg.get_array_module(np.zeros(3)) is np
    assert tinyseg.get_array_module(np.float32(1.0)) is np
    assert tinyseg.get_array_module([1, 2]) is np
    assert Tensor(np.zeros(2)).xp is np


def test_cpu_is_the_default_device_and_new_tensors_go_there(restore_default_device):
    assert tinyseg.get_default_device() == "cpu"
    tinyseg.set_default_device("cpu")
    assert tinyseg.get_default_device() == "cpu"
    assert Tensor([1.0, 2.0]).device == "cpu"
    assert Tensor(np.zeros(2), device="cpu").device == "cpu"


def test_an_unknown_device_name_is_refused(restore_default_device):
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\), got 'gpu'"):
        tinyseg.set_default_device("gpu")
    with pytest.raises(ValueError, match="got 'cuda:0'"):
        Tensor([1.0], device="cuda:0")
    assert tinyseg.get_default_device() == "cpu"


@needs_no_gpu
def test_asking_for_cuda_without_a_gpu_says_how_to_install_it(restore_default_device):
    hint = 'pip install "tinyseg[gpu]"'
    with pytest.raises(RuntimeError, match="device 'cuda' is not usable.*" + re.escape(hint)) as error:
        tinyseg.set_default_device("cuda")
    assert hint in str(error.value)
    assert tinyseg.get_default_device() == "cpu"
    with pytest.raises(RuntimeError, match="tinyseg\\[gpu\\]"):
        Tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="tinyseg\\[gpu\\]"):
        Tensor([1.0, 2.0]).to("cuda")


def test_cuda_available_is_a_bool():
    assert isinstance(tinyseg.cuda_available(), bool)


def test_to_the_same_device_is_the_identity():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x


def test_numpy_returns_a_copy():
    x = Tensor(np.array([1.0, 2.0]))
    copy = x.numpy()
    assert isinstance(copy, np.ndarray)
    copy[0] = 100.0
    assert x.numpy()[0] == 1.0


def test_python_floats_become_float32_and_numpy_arrays_keep_their_dtype():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(2.5).dtype == np.float32
    assert Tensor(np.array([1.0])).dtype == np.float64
    assert Tensor(np.float64(1.0)).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"
    assert Tensor(np.array([1.0]), dtype=np.float32).dtype == np.float32


def test_to_numpy_and_to_device_on_the_cpu():
    array = np.arange(3.0)
    assert backend.to_device(array, "cpu") is array
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])
    assert backend.device_of(array) == "cpu"
    assert backend.is_array(array) and not backend.is_array([1.0])


@pytest.mark.gpu
def test_moving_to_cuda_and_back_keeps_values_and_sends_gradients_home():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    on_gpu = x.to("cuda")
    assert on_gpu.device == "cuda" and on_gpu.xp is not np
    (on_gpu * on_gpu).sum().backward()
    assert backend.device_of(x.grad) == "cpu"
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    np.testing.assert_array_equal(on_gpu.numpy(), x.numpy())
    assert isinstance(on_gpu.numpy(), np.ndarray)


@pytest.mark.gpu
def test_default_device_cuda_puts_new_tensors_on_the_gpu(restore_default_device):
    tinyseg.set_default_device("cuda")
    assert Tensor([1.0]).device == "cuda"
    assert Tensor(np.zeros(1)).device == "cpu"          # an existing array stays where it is


# ----------------------------------------------------------------- the CPU's freed memory
REUSE_SCRIPT = textwrap.dedent("""
    import resource, sys, threading
    import numpy as np
    from tinyseg import backend
    if sys.argv[1] == "keep" and not backend.keep_freed_memory():
        sys.exit("keep_freed_memory() was refused")
    in_thread = sys.argv[2] == "thread"
    sizes = [int(size) for size in sys.argv[3:]]

    def step():                          # a step's arrays: each one written through, then all freed
        arrays = [np.ones(size, dtype=np.uint8) for size in sizes]
        del arrays

    def two_steps():                     # the faults of the second
        step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    if in_thread:                        # a thread of its own: glibc gives it another arena
        worker = threading.Thread(target=two_steps)
        worker.start()
        worker.join()
    else:
        two_steps()
""")
on_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def faults_of_a_second_step(setting: str, sizes: list, in_thread: bool = False) -> int:
    """Page faults while a fresh process allocates the same arrays a second time ("keep": kept),
    on its first thread or on a thread started for it."""
    done = subprocess.run([sys.executable, "-c", REUSE_SCRIPT, setting, "thread" if in_thread else "main",
                           *map(str, sizes)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@on_glibc
def test_by_default_a_large_freed_array_comes_back_on_fresh_pages():
    """The cost keep_freed_memory removes, so that the test below can fail: a 48 MiB array
    (above glibc's largest threshold) is handed back at free and faulted in again."""
    assert faults_of_a_second_step("default", [48 * 2**20]) >= 20


@on_glibc
@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(2**10, 63 * 2**20), min_size=1, max_size=4), st.booleans())
@example([48 * 2**20], False)            # the control's array
@example([5 * 2**20, 33 * 2**20, 2**20], False)
@example([8 * 2**20] * 20, True)         # a worker's share outgrowing one 64 MiB heap of its arena
def test_kept_memory_serves_the_next_step_without_fresh_pages(sizes, in_thread):
    """Whatever the sizes below one 64 MiB heap of a thread's arena, and on the first thread or
    another, a step's arrays allocated again after keep_freed_memory land on pages the process
    already has: at most a few faults (Python's own), not one per page."""
    assert faults_of_a_second_step("keep", sizes, in_thread) <= 16


def test_without_mallopt_nothing_is_changed_and_false_comes_back(monkeypatch):
    monkeypatch.setattr(backend.ctypes, "CDLL", lambda name: object())     # a C library without it
    assert backend.keep_freed_memory() is False


def test_the_command_line_keeps_freed_memory(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(backend, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "missing.npz")]) == 1
    assert calls == [True]


# ----------------------------------------------------------------- NumPy's ufunc buffer
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3 * 8192))
@example(1)
@example(4096)                           # two rows fill the default buffer exactly
@example(4097)
def test_inside_a_buffer_within_rows_no_two_rows_fit_and_after_it_the_buffer_is_back(row_length):
    before = np.getbufsize()
    with backend.buffer_within_rows(np, row_length):
        inside = np.getbufsize()
    assert np.getbufsize() == before
    assert inside % backend.BUFFER_STEP == 0 and inside <= before
    assert 2 * row_length > inside or inside == backend.BUFFER_STEP   # NumPy's smallest buffer
    if 2 * row_length > before:
        assert inside == before          # rows that cannot be copied two at a time: nothing changed


def test_a_buffer_within_rows_is_put_back_when_the_block_raises():
    before = np.getbufsize()
    with pytest.raises(KeyError):
        with backend.buffer_within_rows(np, 100):
            raise KeyError("inside")
    assert np.getbufsize() == before


def test_a_buffer_within_rows_is_this_threads_only():
    """The CPU kernels' shares run on two threads at once, each in its own block: a thread
    started before the block (as the worker threads are) does not see it."""
    before, seen, asked = np.getbufsize(), [], threading.Event()
    worker = threading.Thread(target=lambda: asked.wait(10) and seen.append(np.getbufsize()))
    worker.start()
    with backend.buffer_within_rows(np, 100):
        asked.set()
        worker.join()
        assert np.getbufsize() < before
    assert seen == [before]


def test_a_buffer_within_rows_leaves_other_array_modules_alone():
    before = np.getbufsize()
    with backend.buffer_within_rows(object(), 100):    # CuPy, say: it has no such buffer
        assert np.getbufsize() == before


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 3000), st.sampled_from([np.float32, np.float64]))
def test_broadcasts_inside_a_buffer_within_rows_give_the_same_numbers(rows, row_length, dtype):
    rng = np.random.default_rng(rows * row_length)
    x = rng.standard_normal((rows, row_length)).astype(dtype)
    scale, shift = (rng.standard_normal((rows, 1)).astype(dtype) for _ in range(2))
    outside = x * scale + shift
    with backend.buffer_within_rows(np, row_length):
        inside = x * scale + shift
    np.testing.assert_array_equal(inside, outside)
