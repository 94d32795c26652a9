"""cat (functional/concat.py): what it refuses, and that tinyseg.cat is the same function."""

import numpy as np
import pytest

import tinyseg
from tinyseg import Tensor
from tinyseg.functional.concat import cat


def test_tinyseg_cat_is_the_functional_cat():
    assert tinyseg.cat is cat


def test_cat_refuses_a_piece_that_is_no_tensor_naming_its_place():
    with pytest.raises(TypeError, match=r"cat: tensors\[1\] must be a Tensor, got ndarray"):
        cat([Tensor(np.ones((2, 3))), np.ones((2, 3))], axis=0)


def test_cat_refuses_pieces_of_two_dtypes_naming_both():
    a = Tensor(np.ones((2, 3), dtype=np.float32))
    b = Tensor(np.ones((2, 3), dtype=np.float64))
    with pytest.raises(TypeError, match=r"cat: tensors\[0\] has dtype float32 but tensors\[1\] has dtype float64"):
        cat([a, b], axis=0)
