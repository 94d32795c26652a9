"""SGD and Adam: PyTorch's update rules step for step, untouched gradients, checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tinyseg import Tensor, backend, optim
from tinyseg.nn import Parameter

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]


def make_params(seed=0, device="cpu"):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(shape), device=device) for shape in SHAPES]


def gradient_sequence(steps, seed=1):
    """One list of gradients (one per parameter) per step."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape) for shape in SHAPES] for _ in range(steps)]


def run_ours(optimizer_class, kwargs, grads, device="cpu"):
    params = make_params(device=device)
    optimizer = optimizer_class(params, **kwargs)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = backend.to_device(g.copy(), device)
        optimizer.step()
        history.append([p.numpy() for p in params])
    return history


def run_torch(torch_class, kwargs, grads):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(p.numpy(), requires_grad=True) for p in make_params()]
    optimizer = torch_class(params, **kwargs)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


SGD_SETTINGS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                dict(lr=0.2, weight_decay=0.1)]
ADAM_SETTINGS = [dict(), dict(lr=0.01, betas=(0.8, 0.99)), dict(lr=0.01, eps=1e-3, weight_decay=0.05)]


@pytest.mark.parametrize("kwargs", SGD_SETTINGS)
def test_sgd_matches_torch_step_for_step(kwargs):
    torch = pytest.importorskip("torch")
    grads = gradient_sequence(5)
    for ours, theirs in zip(run_ours(optim.SGD, kwargs, grads), run_torch(torch.optim.SGD, kwargs, grads)):
        for a, b in zip(ours, theirs):
            assert np.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS)
def test_adam_matches_torch_step_for_step(kwargs):
    torch = pytest.importorskip("torch")
    grads = gradient_sequence(6)
    for ours, theirs in zip(run_ours(optim.Adam, kwargs, grads), run_torch(torch.optim.Adam, kwargs, grads)):
        for a, b in zip(ours, theirs):
            assert np.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_plain_sgd_is_p_minus_lr_times_grad():
    p = Parameter(np.array([1.0, -2.0]))
    p.grad = np.array([0.5, 0.5])
    optim.SGD([p], lr=0.1).step()
    assert np.allclose(p.data, [0.95, -2.05])


def test_first_adam_step_moves_each_coordinate_by_lr():
    """m_hat = g and v_hat = g^2 after one step, so the update is lr * g / |g| = lr * sign(g)."""
    p = Parameter(np.zeros(3))
    p.grad = np.array([1e-4, -3.0, 50.0])
    optim.Adam([p], lr=0.01, eps=0).step()
    assert np.allclose(p.data, [-0.01, 0.01, -0.01])


@pytest.mark.parametrize("optimizer_class, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)), (optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.Adam, dict(lr=0.1, weight_decay=0.1)),
])
def test_step_never_modifies_the_gradient(optimizer_class, kwargs):
    params = make_params()
    shared = [np.ones(shape) for shape in SHAPES]
    optimizer = optimizer_class(params, **kwargs)
    for _ in range(3):                                         # the same arrays, every step
        for p, g in zip(params, shared):
            p.grad = g
        optimizer.step()
    assert all(np.all(g == 1.0) for g in shared)
    assert all(p.grad is g for p, g in zip(params, shared))


def test_parameters_without_gradient_are_skipped():
    params = make_params()
    before = params[1].numpy()
    optimizer = optim.Adam(params, lr=0.1)
    params[0].grad = np.ones(SHAPES[0])
    params[2].grad = np.ones(SHAPES[2])
    optimizer.step()
    assert np.array_equal(params[1].data, before)
    assert "state.1.step" not in optimizer.state_dict()
    assert optimizer.state_dict()["state.0.step"] == 1


def test_zero_grad_clears_gradients():
    params = make_params()
    for p in params:
        p.grad = np.ones(p.shape)
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


def npz_round_trip(state: dict) -> dict:
    """Through an .npz file without pickle, as a checkpoint would go."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.mark.parametrize("optimizer_class, kwargs, keys", [
    (optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01),
     {"lr", "momentum", "weight_decay", "state.0.momentum_buffer"}),
    (optim.Adam, dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.01),
     {"lr", "betas", "eps", "weight_decay", "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"}),
])
def test_state_dict_round_trip_resumes_identically(optimizer_class, kwargs, keys):
    grads = gradient_sequence(6)
    params_a = make_params()
    a = optimizer_class(params_a, **kwargs)
    for step_grads in grads[:3]:
        for p, g in zip(params_a, step_grads):
            p.grad = g.copy()
        a.step()
    state = npz_round_trip(a.state_dict())
    assert keys <= set(state)
    assert all(type(v) is np.ndarray for v in a.state_dict().values())

    params_b = [Parameter(p.numpy()) for p in params_a]
    b = optimizer_class(params_b, lr=1.0)                      # hyperparameters come from the checkpoint
    b.load_state_dict(state)
    assert b.lr == a.lr
    for step_grads in grads[3:]:
        for pa, pb, g in zip(params_a, params_b, step_grads):
            pa.grad, pb.grad = g.copy(), g.copy()
        a.step()
        b.step()
    for pa, pb in zip(params_a, params_b):
        assert np.array_equal(pa.data, pb.data)


def test_load_state_dict_refuses_a_mismatch_and_loads_nothing():
    params = make_params()
    optimizer = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape)
    optimizer.step()
    good = optimizer.state_dict()
    bad = dict(good, lr=np.array(0.5))
    bad["state.0.exp_avg"] = np.zeros((4, 3))                  # wrong shape
    bad["state.7.exp_avg"] = np.zeros(2)                       # no parameter 7
    del bad["state.1.exp_avg_sq"]                              # incomplete
    with pytest.raises(ValueError) as error:
        optimizer.load_state_dict(bad)
    message = str(error.value)
    assert "state.0.exp_avg" in message and "(4, 3)" in message
    assert "state.7.exp_avg" in message
    assert "parameter 1" in message
    assert optimizer.lr == 0.1                                 # nothing loaded
    assert np.array_equal(optimizer.state_dict()["state.0.exp_avg"], good["state.0.exp_avg"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(make_params(), lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(make_params(), betas=(0.9, 1.5))
    with pytest.raises(TypeError, match="requires_grad"):
        optim.Adam([Tensor(np.zeros(2))])


@pytest.mark.parametrize("optimizer_class", [optim.SGD, optim.Adam])
def test_updates_happen_in_place_on_the_parameters_device(device, optimizer_class):
    grads = gradient_sequence(3)
    kwargs = dict(lr=0.05, momentum=0.9) if optimizer_class is optim.SGD else dict(lr=0.05)
    on_device = run_ours(optimizer_class, kwargs, grads, device=device)
    on_cpu = run_ours(optimizer_class, kwargs, grads)
    for a, b in zip(on_device[-1], on_cpu[-1]):
        assert np.allclose(a, b)
    params = make_params(device=device)
    arrays = [p.data for p in params]
    optimizer = optimizer_class(params, **kwargs)
    for p in params:
        p.grad = p.xp.ones(p.shape)
    optimizer.step()
    assert all(p.data is a for p, a in zip(params, arrays))   # in place: the same arrays
    state = optimizer.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
