"""The backend switch: array modules, the default device, moving tensors, and the GPU hint."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinyseg
from tinyseg import Tensor, backend

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
