"""Mixing tensors with numbers: NumPy's promotion, never a silent truncation.

`int_tensor * 0.5` used to turn 0.5 into an int64 0 and give zeros. Every
arithmetic operator and comparison, both ways round, must now give what the
same expression gives on NumPy arrays: the same values and the same dtype.
One documented difference: an array constant of the same kind takes the
tensor's dtype (a float32 tensor plus a float64 array stays float32).
"""

from __future__ import annotations

import operator

import numpy as np
import pytest

from tinyseg import Tensor

ARITHMETIC = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "div": operator.truediv}
COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
               "eq": operator.eq, "ne": operator.ne}
ALL_OPS = {**ARITHMETIC, **COMPARISONS}

ARRAYS = {
    "int64": np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int64),
    "int32": np.array([[1, -2, 3]], dtype=np.int32),
    "float32": np.array([[0.25, 1.5, -2.0]], dtype=np.float32),
    "float64": np.array([[0.25, 1.5, -2.0]], dtype=np.float64),
}
CONSTANTS = {"half": 0.5, "two": 2, "true": True, "float_array": np.array([0.5, 1.0, 2.5]),
             "int_array": np.array([1, 2, 3])}


def numpy_answer(op, a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return op(a, b)


@pytest.mark.parametrize("op_name", ALL_OPS)
@pytest.mark.parametrize("array_name", ARRAYS)
@pytest.mark.parametrize("constant_name", CONSTANTS)
def test_tensor_op_constant_is_what_numpy_gives(op_name, array_name, constant_name):
    op, array, constant = ALL_OPS[op_name], ARRAYS[array_name], CONSTANTS[constant_name]
    if isinstance(constant, np.ndarray) and np.can_cast(constant.dtype, array.dtype, "same_kind"):
        constant_as_numpy_sees_it = constant.astype(array.dtype)     # an array constant takes the
    else:                                                            # tensor's dtype if it can
        constant_as_numpy_sees_it = constant
    expected = numpy_answer(op, array, constant_as_numpy_sees_it)
    with np.errstate(divide="ignore", invalid="ignore"):
        got = op(Tensor(array), constant)
    assert isinstance(got, Tensor)
    np.testing.assert_array_equal(got.data, expected)
    assert got.dtype == expected.dtype, f"{array.dtype} {op_name} {constant!r}"


@pytest.mark.parametrize("op_name", ALL_OPS)
@pytest.mark.parametrize("array_name", ARRAYS)
def test_number_op_tensor_is_what_numpy_gives(op_name, array_name):
    op, array = ALL_OPS[op_name], ARRAYS[array_name]
    for number in (0.5, 3):
        expected = numpy_answer(op, number, array)
        with np.errstate(divide="ignore", invalid="ignore"):
            got = op(number, Tensor(array))
        np.testing.assert_array_equal(got.data, expected)
        assert got.dtype == expected.dtype, f"{number!r} {op_name} {array.dtype}"


def test_an_int_tensor_times_a_half_is_a_float_tensor_not_zeros():
    labels = Tensor(np.array([1, 2, 3]))
    assert (labels * 0.5).data.tolist() == [0.5, 1.0, 1.5]
    assert (labels * 0.5).dtype == np.float64
    assert (labels / 2).data.tolist() == [0.5, 1.0, 1.5]
    assert (labels < 1.5).data.tolist() == [True, False, False]      # not "labels < 1"


def test_float32_stays_float32_with_python_floats_and_numpy_scalars():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for y in (x * 0.5, 0.5 * x, x - 1, 1.0 / (x + 1), x * np.float64(3), x + np.arange(3)):
        assert y.dtype == np.float32


def test_gradients_flow_through_mixed_arithmetic_unchanged():
    x = Tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    y = (2 - x) * 0.5 + 3 / x                  # dy/dx = -0.5 - 3 / x^2
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -0.5 - 3 / np.array([1.0, 2.0, 4.0]) ** 2)


def test_comparisons_give_bool_tensors_without_gradient():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad
    assert mask.data.tolist() == [False, False, True]
    assert (x == Tensor(np.array([-1.0, 5.0, 2.0]))).data.tolist() == [True, False, True]


def test_tensors_of_different_dtypes_are_still_refused_by_name():
    with pytest.raises(TypeError, match="different dtypes: float32 .* and float64"):
        Tensor(np.ones(2, dtype=np.float32)) + Tensor(np.ones(2, dtype=np.float64))
    with pytest.raises(TypeError, match="lt: operands have different dtypes"):
        Tensor(np.ones(2, dtype=np.float32)) < Tensor(np.ones(2, dtype=np.int64))


def test_truth_value_of_a_tensor_is_one_element_only():
    assert bool(Tensor(1.0)) and not bool(Tensor(0.0))
    with pytest.raises(ValueError, match=r"truth value of a Tensor of shape \(3,\) is ambiguous"):
        bool(Tensor(np.ones(3)) > 0)


def test_tensors_stay_hashable_by_identity():
    a, b = Tensor(np.ones(2)), Tensor(np.ones(2))
    assert len({a, b}) == 2 and {a: 1}[a] == 1
