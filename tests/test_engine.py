"""The autograd engine: every Tensor operation's values and gradients, the graph walk, gradcheck.

Each operation is checked twice: its value against NumPy, and its backward
against finite differences (tinyseg.gradcheck, float64) on hypothesis-drawn shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyseg
from strategies import (arrays_and_axes, arrays_and_new_shapes, arrays_to_cat, away_from_zero,
                        bounded_arrays, broadcastable_shapes, matmul_shapes, normal_arrays,
                        positive_arrays, shapes)
from tinyseg import GradcheckError, Tensor, cat, gradcheck, no_grad
from tinyseg.complexity.counting import ResultArrays


def leaf(array) -> Tensor:
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


# ----------------------------------------------------------------- elementwise arithmetic
BINARY_OPS = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("name", BINARY_OPS)
@settings(max_examples=20)
@given(pair=broadcastable_shapes(), data=st.data())
def test_binary_op_values_and_gradcheck_under_broadcasting(name, pair, data):
    shape_a, shape_b = pair
    a = data.draw(bounded_arrays(shape_a))
    b = data.draw(away_from_zero(shape_b) if name == "div" else bounded_arrays(shape_b))
    op, numpy_op = BINARY_OPS[name]
    out = op(leaf(a), leaf(b))
    assert out.shape == np.broadcast_shapes(shape_a, shape_b)
    np.testing.assert_allclose(out.numpy(), numpy_op(a, b), rtol=1e-15)
    assert gradcheck(op, leaf(a), leaf(b))


def test_broadcast_gradient_is_summed_back_to_each_input_shape():
    """a (3, 1) meets b (2, 3, 4): every a[i, 0] is used 2 * 4 times, so its gradient sums them."""
    rng = np.random.default_rng(0)
    a, b = leaf(rng.standard_normal((3, 1))), leaf(rng.standard_normal((2, 3, 4)))
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (2, 3, 4)
    np.testing.assert_allclose(a.grad, b.data.sum(axis=(0, 2))[:, None])
    np.testing.assert_allclose(b.grad, np.broadcast_to(a.data, (2, 3, 4)))


@pytest.mark.parametrize("expression, expected, grad", [
    (lambda x: 2.0 - x, [1.0, 0.0], [-1.0, -1.0]),
    (lambda x: x / 2, [0.5, 1.0], [0.5, 0.5]),
    (lambda x: 1 / x, [1.0, 0.5], [-1.0, -0.25]),
    (lambda x: 3 * x + 1, [4.0, 7.0], [3.0, 3.0]),
])
def test_python_numbers_on_either_side_keep_the_tensor_dtype(expression, expected, grad):
    x = Tensor([1.0, 2.0], requires_grad=True)                 # Python floats -> float32, as in PyTorch
    y = expression(x)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), expected)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, grad)


def test_a_numpy_array_works_on_either_side_of_an_operator():
    """tensor + array and array + tensor both give a Tensor (NumPy must not take over the operator)."""
    x = leaf([1.0, 2.0, 3.0])
    array = np.array([10.0, 20.0, 30.0])
    for y in (x + array, array + x, x * array, array * x, array - x, array / x):
        assert isinstance(y, Tensor), f"got {type(y).__name__}"
    (array * x).sum().backward()
    np.testing.assert_array_equal(x.grad, array)


def test_leaf_gradient_has_the_leaf_dtype_even_after_mixing_with_a_float64_array():
    """.grad is shaped AND typed like its tensor: a float32 leaf gets a float32 gradient."""
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (x * np.full(3, 2.0)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


# ----------------------------------------------------------------- unary operations
@settings(max_examples=20)
@given(x=shapes().flatmap(normal_arrays))
def test_neg_and_exp(x):
    np.testing.assert_array_equal((-leaf(x)).numpy(), -x)
    np.testing.assert_allclose(leaf(x).exp().numpy(), np.exp(x), rtol=1e-15)
    assert gradcheck(lambda t: -t, leaf(x))
    assert gradcheck(lambda t: t.exp(), leaf(x))


@settings(max_examples=20)
@given(x=shapes().flatmap(positive_arrays))
def test_log(x):
    np.testing.assert_allclose(leaf(x).log().numpy(), np.log(x), rtol=1e-15)
    assert gradcheck(lambda t: t.log(), leaf(x))


@settings(max_examples=25)
@given(x=shapes().flatmap(positive_arrays), exponent=st.sampled_from([0, 1, 2, 3, 0.5, -1, -2.5, 1.5]))
def test_pow_by_a_scalar_on_positive_bases(x, exponent):
    """d(x^p)/dx = p x^(p-1)."""
    np.testing.assert_allclose((leaf(x) ** exponent).numpy(), x ** exponent, rtol=1e-14)
    assert gradcheck(lambda t: t ** exponent, leaf(x))


@settings(max_examples=15)
@given(x=shapes().flatmap(normal_arrays), exponent=st.sampled_from([2, 3]))
def test_pow_by_an_integer_on_any_base(x, exponent):
    assert gradcheck(lambda t: t ** exponent, leaf(x))


@pytest.mark.parametrize("exponent, slope_at_zero", [(0, 0.0), (1, 1.0), (2, 0.0), (3, 0.0)])
def test_pow_gradient_at_a_zero_base(exponent, slope_at_zero):
    """d(x^p)/dx at x = 0 is p * 0^(p-1): 0 for p = 0 (x^0 is the constant 1), 1 for p = 1, 0 for p > 1."""
    x = leaf([0.0])
    (x ** exponent).sum().backward()
    np.testing.assert_array_equal(x.grad, [slope_at_zero])


# ----------------------------------------------------------------- matrix product
@settings(max_examples=25)
@given(pair=matmul_shapes(), data=st.data())
def test_matmul_values_and_gradcheck_including_batched_broadcasting(pair, data):
    """C = AB: dA = dC B^T, dB = A^T dC, summed over broadcast batch axes."""
    a, b = data.draw(normal_arrays(pair[0])), data.draw(normal_arrays(pair[1]))
    np.testing.assert_allclose((leaf(a) @ leaf(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a, b: a @ b, leaf(a), leaf(b))


# ----------------------------------------------------------------- reductions
@settings(max_examples=30)
@given(case=arrays_and_axes(), keepdims=st.booleans())
@example(case=(np.arange(24.0).reshape(2, 3, 4), 1), keepdims=False)
@example(case=(np.arange(24.0).reshape(2, 3, 4), (0, -1)), keepdims=False)
@example(case=(np.arange(24.0).reshape(2, 3, 4), -2), keepdims=True)
def test_sum_and_mean_over_axes(case, keepdims):
    x, axis = case
    np.testing.assert_allclose(leaf(x).sum(axis=axis, keepdims=keepdims).numpy(),
                               x.sum(axis=axis, keepdims=keepdims), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(leaf(x).mean(axis=axis, keepdims=keepdims).numpy(),
                               x.mean(axis=axis, keepdims=keepdims), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: t.sum(axis=axis, keepdims=keepdims), leaf(x))
    assert gradcheck(lambda t: t.mean(axis=axis, keepdims=keepdims), leaf(x))


# ----------------------------------------------------------------- shapes
@settings(max_examples=20)
@given(case=arrays_and_new_shapes())
def test_reshape(case):
    x, new_shape = case
    np.testing.assert_array_equal(leaf(x).reshape(new_shape).numpy(), x.reshape(new_shape))
    np.testing.assert_array_equal(leaf(x).reshape(*new_shape).numpy(), x.reshape(new_shape))
    assert gradcheck(lambda t: t.reshape(new_shape), leaf(x))


@settings(max_examples=20)
@given(x=shapes(min_dims=1).flatmap(normal_arrays), data=st.data())
def test_transpose(x, data):
    """Any permutation of the axes; each axis may be written counting from the end (-1 is the last)."""
    axes = tuple(data.draw(st.permutations(range(x.ndim))))
    written = tuple(data.draw(st.sampled_from([a, a - x.ndim])) for a in axes)
    np.testing.assert_array_equal(leaf(x).transpose(written).numpy(), x.transpose(axes))
    np.testing.assert_array_equal(leaf(x).transpose(*written).numpy(), x.transpose(axes))
    np.testing.assert_array_equal(leaf(x).T.numpy(), x.T)
    assert gradcheck(lambda t: t.transpose(written), leaf(x))
    assert gradcheck(lambda t: t.T, leaf(x))


def test_transpose_with_negative_axes_sends_a_gradient_shaped_like_the_input():
    x = leaf(np.arange(6.0).reshape(1, 2, 3))
    y = x.transpose(0, -1, 1)                                  # (1, 3, 2)
    y.backward(np.arange(6.0).reshape(1, 3, 2))
    assert x.grad.shape == (1, 2, 3)
    np.testing.assert_array_equal(x.grad, np.arange(6.0).reshape(1, 3, 2).transpose(0, 2, 1))


@settings(max_examples=30)
@given(x=shapes(min_dims=1).flatmap(normal_arrays), data=st.data())
def test_getitem_with_ints_slices_none_and_ellipsis(x, data):
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    np.testing.assert_array_equal(leaf(x)[index].numpy(), x[index])
    assert gradcheck(lambda t: t[index], leaf(x))


def test_getitem_crop_sends_gradient_only_to_the_cropped_region():
    x = leaf(np.ones((1, 1, 4, 4)))
    x[:, :, 1:3, ::2].sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


@settings(max_examples=20)
@given(case=arrays_to_cat())
def test_cat(case):
    arrays, axis = case
    np.testing.assert_array_equal(cat([leaf(a) for a in arrays], axis=axis).numpy(),
                                  np.concatenate(arrays, axis=axis))
    assert gradcheck(lambda *ts: cat(ts, axis=axis), *[leaf(a) for a in arrays])


def test_cat_of_a_tensor_without_grad_sends_gradient_to_the_others():
    a, b = leaf(np.ones((2, 1))), Tensor(np.ones((2, 3)))
    (cat([a, b], axis=1) * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [[2.0], [2.0]])
    assert b.grad is None


def test_astype_sends_the_gradient_back_in_the_source_dtype():
    x = Tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, -4.0])


@settings(max_examples=15)
@given(x=shapes().flatmap(normal_arrays))
def test_astype_gradcheck_through_float32(x):
    """Through float32 and back: finite differences need a large step, rounding is ~1e-7."""
    assert gradcheck(lambda t: (t.astype(np.float32) * 3.0).astype(np.float64), leaf(x), eps=1e-2, atol=1e-3)


# ----------------------------------------------------------------- the graph walk
def test_diamond_accumulates_both_paths():
    """x feeds y twice: d(x*x + x)/dx = 2x + 1."""
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


def test_diamond_through_a_shared_intermediate():
    """h = 3x used by both branches: d((h*h) + 2h)/dx = (2h + 2) * 3."""
    x = leaf([0.5, 1.0])
    h = x * 3.0
    (h * h + h * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, (2 * 3 * x.data + 2) * 3)


@pytest.mark.parametrize("graph, slope", [
    (lambda h: h * 2.0 + h * 3.0, 5.0),        # two sibling branches
    (lambda h: h + h * 2.0, 3.0),              # h, and a tensor computed from h, meet again
])
def test_each_backward_fn_runs_once_with_the_sum_of_all_paths(graph, slope):
    """h feeds several paths: their contributions are summed first, then h's backward runs once."""
    calls = []

    def counted_identity(x: Tensor) -> Tensor:
        def backward(grad):
            calls.append(grad.copy())
            return (grad,)
        return Tensor.from_op(x.data.copy(), (x,), backward, "counted_identity")

    x = leaf([1.0, 2.0])
    graph(counted_identity(x)).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [slope, slope])
    np.testing.assert_array_equal(x.grad, [slope, slope])


def test_a_graph_10000_operations_deep_does_not_hit_the_recursion_limit():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_backward_twice_accumulates_like_pytorch_with_retain_graph():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))
    x.zero_grad()
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_the_graph_keeps_only_the_results_backward_reads():
    """A Node holds no result: a result nobody reads in backward is freed at once, as in
    PyTorch, and backward still gives the right gradients. (ResultArrays, a recording, keeps
    a weak reference to each result's array, to see which ones live on.)"""
    x = leaf(np.linspace(-1, 1, 6).reshape(2, 3))
    w = tinyseg.Tensor(np.arange(6.0).reshape(3, 2) / 6, requires_grad=True)
    with ResultArrays() as results:
        loss = ((x @ w) + 1.0).relu().sum()      # matmul -> add -> relu -> sum, nothing named
    relu = loss.node.parents[0]
    add = relu.parents[0]
    matmul = add.parents[0]
    assert (relu.op, add.op, matmul.op) == ("relu", "add", "matmul")
    assert results.array(relu) is not None        # relu's backward reads its output
    assert results.array(add) is None and results.array(matmul) is None   # relu reads not its input
    assert add.shape == (2, 2)                    # the shape stays, for pictures and counts
    assert set(vars(add)) == {"parents", "backward_fn", "op", "shape", "retained"}   # and no more
    loss.backward()
    h = x.data @ w.data + 1.0
    np.testing.assert_allclose(w.grad, x.data.T @ (h > 0).astype(float))
    np.testing.assert_allclose(x.grad, (h > 0).astype(float) @ w.data.T)


def test_a_named_intermediate_stays_alive_and_can_retain_its_gradient():
    x = leaf([1.0, -2.0, 3.0])
    with ResultArrays() as results:
        h = x * 2.0
        h.retain_grad()
        loss = h.relu().sum()
    assert results.array(h.node) is h.data and h.node.retained() is h   # held by the caller only
    loss.backward()
    np.testing.assert_array_equal(h.grad, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 2.0])


def test_a_tensor_knows_its_node_and_a_leaf_has_none():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    assert x.node is None and "requires_grad=True" in repr(x)
    assert y.node.op == "mul" and "op=mul" in repr(y)
    assert y.node.parents[0] is x                 # a leaf parent is its own graph entry
    assert (y * y).node.parents == (y.node, y.node)   # an intermediate parent is its Node
    assert tinyseg.autograd.topological_order(y) == [x, y.node]


def test_two_leaves_never_share_one_gradient_array():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + y).sum().backward()
    x.grad += 100
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])


def test_no_grad_builds_no_graph():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not tinyseg.is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert tinyseg.is_grad_enabled()
    assert not y.requires_grad and y.node is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_nests_and_is_restored_after_an_exception():
    with no_grad():
        with no_grad():
            pass
        assert not tinyseg.is_grad_enabled()
    assert tinyseg.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert tinyseg.is_grad_enabled()


def test_non_leaf_gradients_are_dropped_unless_retained():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    kept = (x * 2.0).retain_grad()
    (hidden * kept).sum().backward()
    assert hidden.grad is None
    np.testing.assert_array_equal(kept.grad, hidden.data)             # d(h * k)/dk = h
    np.testing.assert_array_equal(x.grad, 12 * x.data)                # d(6 x^2)/dx


def test_backward_of_a_non_scalar_needs_a_gradient():
    y = leaf(np.ones((2, 3))) * 2.0
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3, 2\), expected \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_with_an_explicit_gradient_is_a_vector_jacobian_product():
    x = leaf([1.0, 2.0, 3.0])
    v = np.array([1.0, 10.0, 100.0])
    (x * x).backward(v)
    np.testing.assert_array_equal(x.grad, v * 2 * x.data)


def test_detach_keeps_the_values_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 3.0).detach()
    assert not d.requires_grad and d.node is None
    np.testing.assert_array_equal(d.numpy(), [3.0, 6.0])
    (x * d).sum().backward()                                          # d is a constant here
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])


def test_operations_on_tensors_without_grad_record_nothing():
    y = Tensor([1.0, 2.0]) * 2.0
    assert not y.requires_grad and y.node is None


# ----------------------------------------------------------------- gradcheck itself
def scale_by_three_with_a_wrong_gradient_at(element):
    """Forward 3x; backward claims 3 everywhere except 0 at `element`: a deliberately wrong op."""
    def op(x: Tensor) -> Tensor:
        def backward(grad):
            wrong = 3 * grad
            wrong[element] = 0.0
            return (wrong,)
        return Tensor.from_op(3 * x.data, (x,), backward, "wrong_scale")
    return op


def test_gradcheck_catches_a_wrong_backward_and_names_the_input_and_element():
    wrong = scale_by_three_with_a_wrong_gradient_at((1, 2))
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((2, 3)))
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(2, 3\)\) at element \(1, 2\)"):
        gradcheck(lambda a, b: a + wrong(b), a, b)


def test_gradcheck_catches_a_wrong_backward_on_a_large_input_along_a_random_direction():
    wrong = scale_by_three_with_a_wrong_gradient_at((7, 7))
    x = leaf(np.random.default_rng(0).standard_normal((30, 30)))        # 900 > max_elements
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(30, 30\)\) along random direction"):
        gradcheck(wrong, x)


def test_gradcheck_passes_a_correct_backward_and_skips_non_tensor_arguments():
    assert gradcheck(lambda x, k: x * k, leaf([1.0, 2.0]), 3.0)
    assert gradcheck(lambda x: (x * x).sum(), leaf(np.ones((30, 30))))        # random directions


def test_gradcheck_refuses_float32_inputs():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="input 0 has dtype float32.*float64"):
        gradcheck(lambda t: t * 2.0, x)


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input has requires_grad"):
        gradcheck(lambda t: t * 2.0, Tensor(np.ones(3)))


def test_a_backward_that_returns_the_wrong_number_of_gradients_is_an_error():
    x = Tensor(np.ones(3), requires_grad=True)
    y = Tensor.from_op(x.data * 2, (x, x), lambda grad: (grad * 2,), "double")   # 1 for 2 parents
    with pytest.raises(RuntimeError, match="backward of 'double' returned 1 gradients for 2 parents"):
        y.sum().backward()
