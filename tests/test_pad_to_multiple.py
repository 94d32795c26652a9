"""pad_to_multiple and crop_like: F.pad and a slice that say why, with the same numbers and gradients.

    pad_to_multiple(x, m) == F.pad(x, (0, -W % m, 0, -H % m))
    crop_like(pad_to_multiple(x, m), x) == x
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyseg.functional as F
from strategies import seeds
from tinyseg import Tensor, gradcheck


def image(seed: int, shape: tuple, requires_grad: bool = False) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       multiple=st.integers(1, 8), seed=seeds)
def test_pad_to_multiple_is_f_pad_to_the_next_multiple_and_crop_like_undoes_it(n, c, h, w, multiple, seed):
    x = image(seed, (n, c, h, w))
    padded = F.pad_to_multiple(x, multiple)
    expected = F.pad(x, (0, -w % multiple, 0, -h % multiple))
    assert padded.shape[2] % multiple == 0 and padded.shape[3] % multiple == 0
    np.testing.assert_array_equal(padded.numpy(), expected.numpy())
    np.testing.assert_array_equal(F.crop_like(padded, x).numpy(), x.numpy())


@given(h=st.integers(1, 6), w=st.integers(1, 6), multiple=st.integers(1, 4), seed=seeds)
def test_gradients_of_both_against_finite_differences(h, w, multiple, seed):
    x = image(seed, (1, 2, h, w), requires_grad=True)
    assert gradcheck(lambda x: F.pad_to_multiple(x, multiple), x)
    reference = Tensor(np.zeros((1, 1, max(1, h - 1), w)))
    assert gradcheck(lambda x: F.crop_like(x, reference), x)


def test_nothing_to_add_shares_the_array_and_nothing_to_crop_passes_the_gradient_through():
    x = image(0, (1, 2, 8, 8), requires_grad=True)
    assert F.pad_to_multiple(x, 4).data is x.data
    y = F.crop_like(x, x)
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, np.ones(x.shape))


def test_bad_arguments_are_named():
    x = image(0, (1, 1, 5, 5))
    with pytest.raises(ValueError, match="pad_to_multiple: multiple must be an int >= 1, got 0"):
        F.pad_to_multiple(x, 0)
    with pytest.raises(ValueError, match=r"crop_like: cannot crop input of shape \(1, 1, 5, 5\) to the 6 x 5"):
        F.crop_like(x, image(0, (1, 1, 6, 5)))
