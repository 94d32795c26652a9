"""Bad input is refused where it is made, with a message naming the argument and the shapes.

Never a bare NumPy error from three calls deeper: every check here matches the
operator's own words (the argument's name and the offending shape or value).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinyseg
from tinyseg import Tensor, cat
from tinyseg import functional as F

needs_gpu = pytest.mark.gpu


def ones(*shape, dtype=np.float64) -> Tensor:
    return Tensor(np.ones(shape, dtype=dtype))


def raises(error, *fragments):
    """pytest.raises(error) whose message contains every fragment, in order."""
    return pytest.raises(error, match=".*".join(re.escape(f) for f in fragments))


# ----------------------------------------------------------------- convolution
def test_conv2d_channel_mismatch_names_input_weight_and_both_shapes():
    with raises(ValueError, "conv2d", "input has 3 channels", "(1, 3, 5, 5)", "weight", "(2, 4, 3, 3)"):
        F.conv2d(ones(1, 3, 5, 5), ones(2, 4, 3, 3))


def test_conv_transpose2d_channel_mismatch_reads_weight_as_in_out_kh_kw():
    with raises(ValueError, "conv_transpose2d", "input has 3 channels", "(1, 3, 4, 4)",
                "(in_channels, out_channels, kh, kw)", "(2, 3, 3, 3)"):
        F.conv_transpose2d(ones(1, 3, 4, 4), ones(2, 3, 3, 3))


def test_kernel_larger_than_the_padded_input():
    with raises(ValueError, "conv2d", "kernel (5, 3)", "padded input (4, 6)", "(1, 1, 2, 4)"):
        F.conv2d(ones(1, 1, 2, 4), ones(1, 1, 5, 3), padding=1)
    with raises(ValueError, "max_pool2d", "kernel_size (3, 3)", "padded input (2, 2)", "(1, 1, 2, 2)"):
        F.max_pool2d(ones(1, 1, 2, 2), 3)


@pytest.mark.parametrize("op", [
    lambda stride: F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), stride=stride),
    lambda stride: F.conv_transpose2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), stride=stride),
    lambda stride: F.max_pool2d(ones(1, 1, 4, 4), 2, stride=stride),
])
@pytest.mark.parametrize("stride", [0, (1, 0), -1])
def test_stride_must_be_at_least_one(op, stride):
    with raises(ValueError, "stride must be >= 1", repr(stride)):
        op(stride)


@pytest.mark.parametrize("op", [
    lambda padding: F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), padding=padding),
    lambda padding: F.conv_transpose2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), padding=padding),
    lambda padding: F.max_pool2d(ones(1, 1, 4, 4), 2, padding=padding),
])
def test_padding_must_not_be_negative(op):
    with raises(ValueError, "padding must be >= 0", "(0, -1)"):
        op((0, -1))


def test_stride_must_be_an_int_or_a_pair_of_ints():
    with raises(TypeError, "conv2d", "stride must be an int or a pair of ints", "1.5"):
        F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), stride=1.5)
    with raises(TypeError, "conv2d", "padding must be an int or a pair of ints", "(1, 1, 1)"):
        F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2), padding=(1, 1, 1))


@pytest.mark.parametrize("output_padding, stride", [(2, 2), ((0, 1), (2, 1)), (1, 1)])
def test_output_padding_must_be_smaller_than_stride(output_padding, stride):
    with raises(ValueError, "conv_transpose2d", "output_padding", "must be smaller than stride"):
        F.conv_transpose2d(ones(1, 1, 3, 3), ones(1, 1, 3, 3), stride=stride, output_padding=output_padding)


def test_conv_transpose2d_output_that_padding_crops_away_entirely():
    with raises(ValueError, "conv_transpose2d", "output size", "(1, 1, 1, 1)"):
        F.conv_transpose2d(ones(1, 1, 1, 1), ones(1, 1, 1, 1), padding=1)


@pytest.mark.parametrize("op, name", [
    (lambda x: F.conv2d(x, ones(1, 3, 3, 3)), "conv2d"),
    (lambda x: F.conv_transpose2d(x, ones(3, 1, 3, 3)), "conv_transpose2d"),
    (lambda x: F.max_pool2d(x, 2), "max_pool2d"),
])
def test_a_3d_input_to_a_2d_operator(op, name):
    with raises(ValueError, name, "input must be 4-d", "(N, C, H, W)", "(3, 8, 8)"):
        op(ones(3, 8, 8))


def test_a_3d_weight():
    with raises(ValueError, "conv2d", "weight must be 4-d", "(out_channels, in_channels, kh, kw)",
                "(2, 3, 3)"):
        F.conv2d(ones(1, 3, 8, 8), ones(2, 3, 3))


def test_dtype_mismatch_between_input_and_weight():
    with raises(TypeError, "conv2d", "input has dtype float32", "weight has dtype float64"):
        F.conv2d(ones(1, 1, 4, 4, dtype=np.float32), ones(1, 1, 2, 2))
    with raises(TypeError, "conv2d", "input has dtype float64", "bias has dtype float32"):
        F.conv2d(ones(1, 1, 4, 4), ones(2, 1, 2, 2), ones(2, dtype=np.float32))


def test_bias_of_the_wrong_shape():
    with raises(ValueError, "conv2d", "bias has shape (3,)", "expected (2,)", "(2, 1, 2, 2)"):
        F.conv2d(ones(1, 1, 4, 4), ones(2, 1, 2, 2), ones(3))
    with raises(ValueError, "conv_transpose2d", "bias has shape (1,)", "expected (5,)", "(1, 5, 2, 2)"):
        F.conv_transpose2d(ones(1, 1, 4, 4), ones(1, 5, 2, 2), ones(1))
    with raises(ValueError, "conv2d", "bias must be 1-d", "(1, 2)"):
        F.conv2d(ones(1, 1, 4, 4), ones(2, 1, 2, 2), ones(1, 2))


def test_a_numpy_array_where_a_tensor_is_needed():
    with raises(TypeError, "conv2d", "weight must be a tinyseg.Tensor", "ndarray"):
        F.conv2d(ones(1, 1, 4, 4), np.ones((1, 1, 2, 2)))
    with raises(TypeError, "max_pool2d", "input must be a tinyseg.Tensor", "ndarray"):
        F.max_pool2d(np.ones((1, 1, 4, 4)), 2)


def test_integer_tensors_are_refused_by_float_operators():
    with raises(TypeError, "conv2d", "input must be a floating-point tensor", "int64"):
        F.conv2d(Tensor(np.ones((1, 1, 4, 4), dtype=np.int64)), ones(1, 1, 2, 2))
    with raises(TypeError, "requires_grad needs a floating-point tensor", "int"):
        Tensor([1, 2], requires_grad=True)


# ----------------------------------------------------------------- pooling
def test_max_pool_padding_larger_than_half_the_kernel():
    with raises(ValueError, "max_pool2d", "padding (2, 0)", "at most half of kernel_size (3, 3)"):
        F.max_pool2d(ones(1, 1, 6, 6), 3, padding=(2, 0))


# ----------------------------------------------------------------- cross-entropy
def test_float_targets():
    with raises(TypeError, "cross_entropy", "target must hold integer class indices", "float64", "(2,)"):
        F.cross_entropy(ones(2, 3), np.array([0.0, 1.0]))


def test_out_of_range_labels_name_the_labels_and_the_range():
    with raises(ValueError, "cross_entropy", "target holds labels [-1, 3]", "outside [0, 3)", "(2, 3, 1, 2)"):
        F.cross_entropy(ones(2, 3, 1, 2), np.array([[[0, 3]], [[-1, 2]]]))


def test_ignore_index_is_not_out_of_range():
    assert F.cross_entropy(ones(2, 3), np.array([255, 1]), ignore_index=255).shape == ()


def test_target_of_the_wrong_shape():
    with raises(ValueError, "cross_entropy", "target has shape (2, 4, 4)", "expected (2, 3, 3)",
                "(2, 5, 3, 3)"):
        F.cross_entropy(ones(2, 5, 3, 3), np.zeros((2, 4, 4), dtype=np.int64))


def test_class_weight_of_the_wrong_shape():
    with raises(ValueError, "cross_entropy", "weight has shape (2,)", "expected (3,)", "(4, 3)"):
        F.cross_entropy(ones(4, 3), np.zeros(4, dtype=np.int64), weight=np.ones(2))


def test_unknown_reduction_and_1d_logits():
    with raises(ValueError, "cross_entropy", "reduction must be one of", "'avg'"):
        F.cross_entropy(ones(4, 3), np.zeros(4, dtype=np.int64), reduction="avg")
    with raises(ValueError, "cross_entropy", "(N, C) or (N, C, H, W)", "(3,)"):
        F.cross_entropy(ones(3), np.zeros(1, dtype=np.int64))


# ----------------------------------------------------------------- tensor operations
@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"), (lambda a, b: a / b, "div"),
])
def test_elementwise_shapes_that_do_not_broadcast(op, name):
    with raises(ValueError, name, "shapes (2, 3) and (4,) cannot be broadcast"):
        op(ones(2, 3), ones(4))
    with raises(ValueError, name, "shapes (2, 3) and (2,) cannot be broadcast"):
        op(ones(2, 3), np.ones(2))


def test_elementwise_dtype_mismatch_between_tensors():
    with raises(TypeError, "add", "float64 (shape (2,))", "float32 (shape (2,))"):
        ones(2) + ones(2, dtype=np.float32)


def test_matmul_inner_sizes_that_do_not_fit():
    with raises(ValueError, "matmul", "(2, 3) and (4, 5)"):
        ones(2, 3) @ ones(4, 5)
    with raises(ValueError, "matmul", "(3,) and (3, 2)"):
        ones(3) @ ones(3, 2)


def test_matmul_batch_axes_that_do_not_broadcast():
    """(2, 3, 4) @ (3, 4, 5): inner sizes fit, batch sizes 2 and 3 do not."""
    with raises(ValueError, "matmul", "(2, 3, 4) and (3, 4, 5)"):
        ones(2, 3, 4) @ ones(3, 4, 5)


def test_reshape_to_a_different_size():
    with raises(ValueError, "reshape", "shape (2, 3)", "6 elements", "(4, 2)"):
        ones(2, 3).reshape(4, 2)


def test_cat_of_mismatched_shapes():
    with raises(ValueError, "cat", "tensors[1] has shape (2, 4)", "tensors[0] shape (3, 3)", "axis 1"):
        cat([ones(3, 3), ones(2, 4)], axis=1)
    with raises(ValueError, "cat", "at least one tensor"):
        cat([])


def test_advanced_indexing_and_tensor_exponents_are_refused():
    with raises(TypeError, "indexing", "list"):
        ones(3, 3)[[0, 1]]
    with raises(TypeError, "pow", "exponent must be a Python number", "Tensor"):
        ones(2) ** ones(2)


def test_pad_with_bad_widths():
    with raises(ValueError, "pad", "(1, -1)", "(2, 2)"):
        F.pad(ones(2, 2), (1, -1))
    with raises(ValueError, "pad", "(1, 1, 1)", "(2, 2)"):
        F.pad(ones(2, 2), (1, 1, 1))


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax])
def test_softmax_dim_out_of_range(op):
    """The default dim=1 (NCHW classes) on a 1-d tensor: name the dim and the shape, as PyTorch does."""
    with raises((ValueError, IndexError), op.__name__, "dim", "(3,)"):
        op(ones(3))


def test_item_of_a_tensor_with_several_elements():
    with raises(ValueError, "item()", "(2, 2)"):
        ones(2, 2).item()


# ----------------------------------------------------------------- mixed devices (need a GPU)
@needs_gpu
def test_mixed_devices_in_conv2d():
    with raises(ValueError, "conv2d", "input is on cpu", "weight is on cuda"):
        F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 2).to("cuda"))


@needs_gpu
def test_mixed_devices_in_arithmetic_with_tensors_and_arrays():
    gpu = ones(2).to("cuda")
    with raises(ValueError, "add", "different devices", "cuda", "cpu"):
        gpu + ones(2)
    with raises(ValueError, "mul", "different devices", "cuda", "cpu"):
        gpu * np.ones(2)


@needs_gpu
def test_mixed_devices_in_cross_entropy():
    logits = ones(2, 3).to("cuda")
    with raises(ValueError, "cross_entropy", "input is on cuda", "target is on cpu"):
        F.cross_entropy(logits, np.zeros(2, dtype=np.int64))


def test_same_device_arrays_are_accepted_where_tensors_mix_with_arrays():
    """On one device, plain arrays are welcome as the other operand and as targets."""
    assert (ones(2) + np.ones(2)).device == "cpu"
    assert F.cross_entropy(ones(2, 3), np.zeros(2, dtype=np.int64), weight=np.ones(3)).device == "cpu"
    assert tinyseg.backend.device_of(np.ones(2)) == "cpu"
