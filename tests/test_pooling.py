"""max_pool2d: values against a direct loop, gradients on tie-free inputs, and the tie rule."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings

import reference
from strategies import PoolConfig, pool_configs, seeds, tie_free, tied
from tinyseg import Tensor, backend, gradcheck
from tinyseg import functional as F

OVERLAPPING = PoolConfig(2, 2, 7, 6, (3, 2), (1, 1), (1, 1))          # stride < kernel
STRIDE_ABOVE_KERNEL = PoolConfig(1, 3, 9, 9, (2, 3), (4, 4), (0, 1))
DEFAULT_STRIDE = PoolConfig(3, 1, 5, 8, (2, 2), None, (0, 0))         # stride = kernel


def pool(x, cfg: PoolConfig):
    return F.max_pool2d(x, cfg.kernel, stride=cfg.stride, padding=cfg.padding)


@settings(max_examples=30)
@given(cfg=pool_configs(), seed=seeds)
@example(cfg=OVERLAPPING, seed=0)
@example(cfg=STRIDE_ABOVE_KERNEL, seed=0)
@example(cfg=DEFAULT_STRIDE, seed=0)
def test_max_pool2d_matches_direct_loop(device, cfg, seed):
    x = np.random.default_rng(seed).standard_normal(cfg.input_shape)
    expected, _ = reference.max_pool2d(x, cfg.kernel, cfg.stride, cfg.padding)
    y = pool(Tensor(x, device=device), cfg)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.numpy(), expected)


@settings(max_examples=25)
@given(cfg=pool_configs(max_side=6), seed=seeds)
@example(cfg=OVERLAPPING, seed=0)
def test_max_pool2d_gradcheck_on_tie_free_input(device, cfg, seed):
    x = Tensor(tie_free(cfg.input_shape, seed), device=device, requires_grad=True)
    assert gradcheck(lambda x: pool(x, cfg), x)


@settings(max_examples=30)
@given(cfg=pool_configs(), seed=seeds)
@example(cfg=OVERLAPPING, seed=0)
def test_max_pool2d_gradient_goes_to_the_first_max_even_with_ties(device, cfg, seed):
    """With many ties, each window's gradient lands on its first maximum (row-major)."""
    x = tied(cfg.input_shape, seed)
    _, first_max = reference.max_pool2d(x, cfg.kernel, cfg.stride, cfg.padding)
    gy = np.random.default_rng(10).standard_normal(first_max.shape)
    xt = Tensor(x, device=device, requires_grad=True)
    pool(xt, cfg).backward(Tensor(gy, device=device))
    expected = reference.max_pool2d_grad(gy, first_max, cfg.input_shape)
    np.testing.assert_allclose(backend.to_numpy(xt.grad), expected, rtol=1e-12, atol=1e-12)


def test_tie_rule_first_maximum_in_row_major_order(device):
    """PyTorch's rule, pinned by hand: the first tap (0,0), (0,1), ..., (1,0), ... that holds the max wins."""
    def grad_of(image, kernel, stride):
        x = Tensor(np.array(image, dtype=np.float64)[None, None], device=device, requires_grad=True)
        F.max_pool2d(x, kernel, stride=stride).sum().backward()
        return backend.to_numpy(x.grad)[0, 0].tolist()

    assert grad_of([[1, 1],
                    [1, 1]], 2, 2) == [[1, 0],
                                       [0, 0]]
    assert grad_of([[0, 5],
                    [5, 0]], 2, 2) == [[0, 1],             # (0, 1) comes before (1, 0)
                                       [0, 0]]
    assert grad_of([[3, 3, 3, 3]], (1, 2), 1) == [[1, 1, 1, 0]]   # three windows, three first maxima


def test_overlapping_windows_add_their_gradients_on_a_shared_max(device):
    """stride 1 < kernel 2: the centre 9 is the max of all four windows and receives 4 gradients."""
    x = Tensor(np.array([[[[1., 2., 3.], [4., 9., 5.], [6., 7., 8.]]]]), device=device, requires_grad=True)
    F.max_pool2d(x, 2, stride=1).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad)[0, 0], [[0, 0, 0], [0, 4, 0], [0, 0, 0]])


def test_padding_never_wins_even_against_negative_values(device):
    x = Tensor(-np.arange(1.0, 10.0).reshape(1, 1, 3, 3), device=device, requires_grad=True)
    y = F.max_pool2d(x, 3, stride=1, padding=1)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])
    y.sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad)[0, 0], [[4, 2, 0], [2, 1, 0], [0, 0, 0]])


def test_float32_stays_float32(device):
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4), dtype=np.float32, device=device)
    y = F.max_pool2d(x, 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy()[0, 0], [[5, 7], [13, 15]])
