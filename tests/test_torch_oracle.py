"""PyTorch as an oracle: every operator's values and gradients against torch (float64, CPU).

tinyseg promises PyTorch's names, argument orders and meanings; this checks the
numbers too, including the corner cases where the definitions are easiest to
get subtly wrong: output_padding, ties in max pooling, padding, and the
weighted mean of cross-entropy with ignored targets. Skipped without torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
torch_F = torch.nn.functional

from strategies import (arrays_and_dim, conv_configs, cross_entropy_cases, pool_configs,  # noqa: E402
                        shapes, tie_free_arrays, tied_arrays, transpose_conv_configs)
from tinyseg import Tensor, backend  # noqa: E402
from tinyseg import functional as F  # noqa: E402

TOLERANCE = dict(rtol=1e-10, atol=1e-10)


def both(array):
    """The same float64 values as a tinyseg leaf and as a torch leaf."""
    return Tensor(array, requires_grad=True), torch.tensor(array, dtype=torch.float64, requires_grad=True)


def assert_same_values_and_gradients(ours, theirs, our_inputs, their_inputs, rng):
    """Compare outputs, then the gradients of <v, output> for one random v."""
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **TOLERANCE)
    v = rng.standard_normal(ours.shape)
    ours.backward(v)
    theirs.backward(torch.tensor(v))
    for mine, reference in zip(our_inputs, their_inputs):
        np.testing.assert_allclose(backend.to_numpy(mine.grad), reference.grad.numpy(), **TOLERANCE)


# ----------------------------------------------------------------- convolution
@settings(max_examples=25)
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_matches_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    (x, tx), (w, tw), (b, tb) = (both(rng.standard_normal(cfg.input_shape)),
                                 both(rng.standard_normal(cfg.weight_shape)),
                                 both(rng.standard_normal(cfg.out_channels)))
    ours = F.conv2d(x, w, b, stride=cfg.stride, padding=cfg.padding)
    theirs = torch_F.conv2d(tx, tw, tb, stride=cfg.stride, padding=cfg.padding)
    assert_same_values_and_gradients(ours, theirs, (x, w, b), (tx, tw, tb), rng)


@settings(max_examples=25)
@given(cfg=transpose_conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_conv_transpose2d_matches_torch_including_output_padding(cfg, seed):
    rng = np.random.default_rng(seed)
    (x, tx), (w, tw), (b, tb) = (both(rng.standard_normal(cfg.input_shape)),
                                 both(rng.standard_normal(cfg.weight_shape)),
                                 both(rng.standard_normal(cfg.out_channels)))
    ours = F.conv_transpose2d(x, w, b, stride=cfg.stride, padding=cfg.padding,
                              output_padding=cfg.output_padding)
    theirs = torch_F.conv_transpose2d(tx, tw, tb, stride=cfg.stride, padding=cfg.padding,
                                      output_padding=cfg.output_padding)
    assert_same_values_and_gradients(ours, theirs, (x, w, b), (tx, tw, tb), rng)


# ----------------------------------------------------------------- pooling
@settings(max_examples=30)
@given(cfg=pool_configs(), ties=st.booleans(), data=st.data())
def test_max_pool2d_matches_torch_including_ties_and_padding(cfg, ties, data):
    values = data.draw(tied_arrays(cfg.input_shape) if ties else tie_free_arrays(cfg.input_shape))
    x, tx = both(values)
    ours = F.max_pool2d(x, cfg.kernel, stride=cfg.stride, padding=cfg.padding)
    theirs = torch_F.max_pool2d(tx, cfg.kernel, stride=cfg.stride, padding=cfg.padding)
    assert_same_values_and_gradients(ours, theirs, (x,), (tx,), np.random.default_rng(0))


# ----------------------------------------------------------------- cross-entropy
@settings(max_examples=40)
@given(case=cross_entropy_cases())
def test_cross_entropy_matches_torch(case):
    """Class weights, ignore_index, every reduction, (N, C) and (N, C, H, W)."""
    x, tx = both(case.logits)
    weight = None if case.weight is None else torch.tensor(case.weight)
    ours = F.cross_entropy(x, case.target, weight=case.weight, ignore_index=case.ignore_index,
                           reduction=case.reduction)
    theirs = torch_F.cross_entropy(tx, torch.tensor(case.target), weight=weight,
                                   ignore_index=case.ignore_index, reduction=case.reduction)
    assert_same_values_and_gradients(ours, theirs, (x,), (tx,), np.random.default_rng(1))


def test_cross_entropy_with_every_target_ignored_matches_torch():
    logits = np.random.default_rng(2).standard_normal((2, 3, 2, 2))
    target = np.full((2, 2, 2), 7)
    for reduction in ("mean", "sum", "none"):
        ours = F.cross_entropy(Tensor(logits), target, ignore_index=7, reduction=reduction)
        theirs = torch_F.cross_entropy(torch.tensor(logits), torch.tensor(target), ignore_index=7,
                                       reduction=reduction)
        np.testing.assert_equal(ours.numpy(), theirs.numpy())


# ----------------------------------------------------------------- activations
@settings(max_examples=20)
@given(case=arrays_and_dim())
def test_softmax_and_log_softmax_match_torch(case):
    values, dim = case
    for ours_fn, theirs_fn in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        x, tx = both(values)
        assert_same_values_and_gradients(ours_fn(x, dim), theirs_fn(tx, dim), (x,), (tx,),
                                         np.random.default_rng(3))


@settings(max_examples=20)
@given(values=shapes(min_dims=1).flatmap(tied_arrays).map(lambda a: a - 1.0))
def test_relu_matches_torch_including_exact_zeros(values):
    x, tx = both(values)                                         # values in {-1, 0, 1}
    assert_same_values_and_gradients(F.relu(x), torch.relu(tx), (x,), (tx,), np.random.default_rng(4))
