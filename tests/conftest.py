"""Fixtures shared by the engine tests: the device to run on, and its array module.

Operator tests take a `device` argument and are run once per backend:

    def test_conv2d_matches_reference(device):
        y = F.conv2d(Tensor(x, device=device), Tensor(w, device=device))
        assert np.allclose(y.numpy(), reference.conv2d(x, w))

Tests of raw-array kernels (im2col) take `xp` instead: numpy, or cupy on "cuda".

"cpu" always runs. "cuda" carries the `gpu` mark and skips when CuPy or a
CUDA device is missing, so the same suite runs unchanged on a laptop and on a
GPU machine (`pytest -m gpu` runs only the GPU half).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinyseg
from tinyseg import backend

# Every example is small, but the first call on a GPU compiles kernels: no deadline. Tests that
# do not choose their own max_examples get 20, which keeps the whole suite quick.
settings.register_profile(
    "tinyseg", deadline=None, max_examples=20,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tinyseg")

GPU_SKIP_REASON = 'needs CuPy and a CUDA device (pip install "tinyseg[gpu]")'

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip cleanly where there is no usable CUDA device."""
    if tinyseg.cuda_available():
        return
    skip = pytest.mark.skip(reason=GPU_SKIP_REASON)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES, scope="session")
def device(request) -> str:
    """The device an operator test runs on: "cpu", then "cuda" where there is one."""
    if request.param == "cuda" and not tinyseg.cuda_available():
        pytest.skip(GPU_SKIP_REASON)
    return request.param


@pytest.fixture(scope="session")
def xp(device):
    """numpy on "cpu", cupy on "cuda": the array module of tensors on `device`."""
    return backend.get_array_module(backend.to_device(np.zeros(1), device))


@pytest.fixture
def restore_default_device():
    """Put the default device back after a test that changes it."""
    previous = tinyseg.get_default_device()
    yield
    tinyseg.set_default_device(previous)
