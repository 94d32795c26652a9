"""Layers (tinyseg.nn) and their two new operators, F.batch_norm and F.linear.

Shapes of every layer, gradients by finite differences (float64), BatchNorm
and the weighted layers against PyTorch, and the Module machinery:
parameter names, state_dict round trips, all-or-nothing loading,
train/eval, to(device).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies import seeds
import tinyseg
from tinyseg import Tensor, gradcheck, nn
from tinyseg import functional as F


def normal(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def leaf(shape, seed=0, dtype=np.float64, device="cpu"):
    return Tensor(normal(shape, seed, dtype), requires_grad=True, device=device)


# ----------------------------------------------------------------- shapes
@pytest.mark.parametrize("layer, input_shape, output_shape", [
    (lambda: nn.Conv2d(3, 5, 3), (2, 3, 8, 9), (2, 5, 6, 7)),
    (lambda: nn.Conv2d(3, 5, 3, padding=1), (2, 3, 8, 9), (2, 5, 8, 9)),
    (lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1), (1, 3, 7, 8), (1, 5, 4, 4)),
    (lambda: nn.Conv2d(2, 4, (1, 3), bias=False), (1, 2, 5, 5), (1, 4, 5, 3)),
    (lambda: nn.ConvTranspose2d(4, 2, 2, stride=2), (2, 4, 3, 5), (2, 2, 6, 10)),
    (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), (1, 4, 3, 3), (1, 2, 6, 6)),
    (lambda: nn.MaxPool2d(2), (2, 3, 8, 9), (2, 3, 4, 4)),
    (lambda: nn.MaxPool2d(3, stride=1, padding=1), (1, 2, 5, 6), (1, 2, 5, 6)),
    (lambda: nn.ReLU(), (2, 3, 4, 5), (2, 3, 4, 5)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 5), (2, 3, 4, 5)),
    (lambda: nn.Linear(6, 4), (5, 6), (5, 4)),
    (lambda: nn.Flatten(), (2, 3, 4, 5), (2, 60)),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 7)),
     (4, 1, 5, 5), (4, 7)),
])
def test_layer_output_shapes(layer, input_shape, output_shape):
    y = layer()(Tensor(normal(input_shape, dtype=np.float32)))
    assert y.shape == output_shape
    assert y.dtype == np.float32


def test_weight_shapes_follow_pytorch():
    assert nn.Conv2d(3, 5, (2, 4)).weight.shape == (5, 3, 2, 4)               # (out, in, kh, kw)
    assert nn.ConvTranspose2d(3, 5, 2, stride=2).weight.shape == (3, 5, 2, 2)  # (in, out, kh, kw)
    assert nn.Linear(6, 4).weight.shape == (4, 6)                            # (out, in)
    assert nn.Conv2d(3, 5, 3, bias=False).bias is None
    assert [name for name, _ in nn.BatchNorm2d(4).named_parameters()] == ["weight", "bias"]


# ----------------------------------------------------------------- initialisation
def test_he_initialisation_has_std_sqrt_2_over_fan_in():
    conv = nn.Conv2d(64, 128, 3, rng=0)
    fan_in = 64 * 3 * 3
    assert abs(conv.weight.data.std() - math.sqrt(2 / fan_in)) < 0.02 * math.sqrt(2 / fan_in)
    assert abs(conv.weight.data.mean()) < 0.01 * math.sqrt(2 / fan_in)
    assert np.all(conv.bias.data == 0)
    up = nn.ConvTranspose2d(128, 64, 2, stride=2, rng=0)                     # each output sums C_in = 128 terms
    assert abs(up.weight.data.std() - math.sqrt(2 / 128)) < 0.02 * math.sqrt(2 / 128)


def test_initialisation_is_a_function_of_the_seed():
    a, b, c = nn.Conv2d(3, 4, 3, rng=7), nn.Conv2d(3, 4, 3, rng=7), nn.Conv2d(3, 4, 3, rng=8)
    assert np.array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    wide = nn.Linear(5, 3, dtype=np.float64, rng=np.random.default_rng(1))
    narrow = nn.Linear(5, 3, dtype=np.float32, rng=np.random.default_rng(1))
    assert wide.weight.dtype == np.float64 and narrow.weight.dtype == np.float32
    assert np.allclose(wide.weight.data, narrow.weight.data, atol=1e-7)     # same draws, then cast


# ----------------------------------------------------------------- gradients (float64)
@given(seed=seeds, n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(1, 3),
       training=st.booleans(), affine=st.booleans())
def test_batch_norm_gradients(seed, n, c, h, w, training, affine):
    if training and n * h * w < 2:
        n = 2                                                  # training needs two values per channel
    rng = np.random.default_rng(seed)
    x = Tensor(3 * rng.standard_normal((n, c, h, w)) + 1, requires_grad=True)
    weight = Tensor(rng.uniform(0.5, 2.0, c), requires_grad=True) if affine else None
    bias = Tensor(rng.standard_normal(c), requires_grad=True) if affine else None
    running_mean = Tensor(rng.standard_normal(c))
    running_var = Tensor(rng.uniform(0.5, 2.0, c))
    inputs = [x] + ([weight, bias] if affine else [])

    def fn(x, *affine_params):
        return F.batch_norm(x, running_mean, running_var, *affine_params, training=training,
                            momentum=0.0)                      # momentum 0: stats stay put while probing
    assert gradcheck(fn, *inputs)


def test_linear_gradients():
    x, weight, bias = leaf((4, 5), 1), leaf((3, 5), 2), leaf((3,), 3)
    assert gradcheck(F.linear, x, weight, bias)
    assert gradcheck(lambda x, w: F.linear(x, w), x, weight)


def test_linear_is_x_times_weight_transposed_plus_bias():
    x, weight, bias = normal((4, 5), 1), normal((3, 5), 2), normal((3,), 3)
    y = F.linear(Tensor(x), Tensor(weight), Tensor(bias))
    assert np.allclose(y.numpy(), x @ weight.T + bias)


def test_gradients_through_a_small_network():
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=0), nn.BatchNorm2d(3, dtype=np.float64),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.ConvTranspose2d(3, 2, 2, stride=2, dtype=np.float64, rng=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * 4 * 4, 3, dtype=np.float64, rng=2),
    )
    model[1].momentum = 0.0                                    # probing must not move the running stats
    x = leaf((2, 2, 4, 4), 5)
    params = list(model.parameters())
    assert gradcheck(lambda x, *params: model(x), x, *params, max_elements=16)


# ----------------------------------------------------------------- BatchNorm against PyTorch
def test_batch_norm_matches_torch_in_train_and_eval():
    torch = pytest.importorskip("torch")
    x_data = [normal((4, 3, 5, 6), seed) * 2 + seed for seed in range(3)]
    ours = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    ours.weight.data[:] = [0.5, 1.0, 2.0]
    ours.bias.data[:] = [0.1, -0.2, 0.3]
    theirs = torch.nn.BatchNorm2d(3, momentum=0.2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        theirs.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))

    for data in x_data:                                        # train: batch statistics
        x = Tensor(data, requires_grad=True)
        tx = torch.tensor(data, requires_grad=True)
        gy = normal(data.shape, 9)
        y, ty = ours(x), theirs(tx)
        assert np.allclose(y.numpy(), ty.detach().numpy(), atol=1e-10)
        y.backward(gy)
        ty.backward(torch.tensor(gy))
        assert np.allclose(x.grad, tx.grad.numpy(), atol=1e-10)
        assert np.allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-10)
        assert np.allclose(ours.bias.grad, theirs.bias.grad.numpy(), atol=1e-10)
        ours.zero_grad()
        theirs.zero_grad()
        assert np.allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), atol=1e-12)
        assert np.allclose(ours.running_var.numpy(), theirs.running_var.numpy(), atol=1e-12)  # unbiased

    ours.eval()
    theirs.eval()
    x = Tensor(x_data[0], requires_grad=True)
    tx = torch.tensor(x_data[0], requires_grad=True)
    y, ty = ours(x), theirs(tx)                                # eval: running statistics
    assert np.allclose(y.numpy(), ty.detach().numpy(), atol=1e-10)
    y.backward(normal(x.shape, 4))
    ty.backward(torch.tensor(normal(x.shape, 4)))
    assert np.allclose(x.grad, tx.grad.numpy(), atol=1e-10)


def test_batch_norm_eval_does_not_depend_on_the_batch_nor_update_statistics():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    bn(Tensor(normal((8, 2, 3, 3), 1) * 3 + 2))               # train: moves the running stats
    mean_after_training = bn.running_mean.numpy()
    assert not np.allclose(mean_after_training, 0)
    bn.eval()
    batch = normal((4, 2, 3, 3), 2)
    alone = bn(Tensor(batch[:1])).numpy()
    together = bn(Tensor(batch)).numpy()[:1]
    assert np.allclose(alone, together)
    assert np.array_equal(bn.running_mean.numpy(), mean_after_training)


def test_batch_norm_refuses_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(2)(Tensor(np.ones((1, 2, 1, 1), dtype=np.float32)))


# ----------------------------------------------------------------- the weighted layers against PyTorch
def test_conv_layers_and_linear_match_torch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    x = normal((2, 3, 7, 6), 1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    expected = tF.conv2d(torch.tensor(x), torch.tensor(conv.weight.data), torch.tensor(conv.bias.data + 0.5),
                         stride=2, padding=1)
    conv.bias.data += 0.5
    assert np.allclose(conv(Tensor(x)).numpy(), expected.numpy())

    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, dtype=np.float64, rng=1)
    expected = tF.conv_transpose2d(torch.tensor(x), torch.tensor(up.weight.data), torch.tensor(up.bias.data),
                                   stride=2, padding=1, output_padding=1)
    assert np.allclose(up(Tensor(x)).numpy(), expected.numpy())

    linear = nn.Linear(6, 5, dtype=np.float64, rng=2)
    rows = normal((3, 6), 3)
    expected = tF.linear(torch.tensor(rows), torch.tensor(linear.weight.data), torch.tensor(linear.bias.data))
    assert np.allclose(linear(Tensor(rows)).numpy(), expected.numpy())


# ----------------------------------------------------------------- Module machinery
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, rng=0)
        self.blocks = [nn.Sequential(nn.BatchNorm2d(2), nn.ReLU()), nn.Conv2d(2, 2, 1, bias=False, rng=1)]
        self.head = nn.Linear(2 * 4 * 4, 3, rng=2)
        self.note = "not a tensor"

    def forward(self, x):
        x = self.conv(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.reshape(x.shape[0], -1))


def test_parameter_and_state_dict_names_follow_pytorch():
    model = Tiny()
    assert [name for name, _ in model.named_parameters()] == [
        "conv.weight", "conv.bias", "blocks.0.0.weight", "blocks.0.0.bias", "blocks.1.weight",
        "head.weight", "head.bias"]
    assert list(model.state_dict()) == [
        "conv.weight", "conv.bias", "blocks.0.0.weight", "blocks.0.0.bias",
        "blocks.0.0.running_mean", "blocks.0.0.running_var", "blocks.1.weight",
        "head.weight", "head.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    assert [name for name, _ in model.named_buffers()] == ["blocks.0.0.running_mean", "blocks.0.0.running_var"]
    assert len(list(model.modules())) == 7  # Tiny, conv, Sequential, BatchNorm2d, ReLU, conv, head


def test_state_dict_holds_host_copies_and_round_trips():
    model, other = Tiny(), Tiny()
    for p in other.parameters():
        p.data += 1.0
    other.blocks[0][0].running_var.data[:] = 3.0
    state = other.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    state["head.bias"][:] = 42.0                              # a copy: the model is unchanged
    assert not np.any(other.head.bias.data == 42.0)
    weight_object = model.head.weight
    model.load_state_dict(other.state_dict())
    assert model.head.weight is weight_object                  # same Parameter, new values
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert np.array_equal(a, b), name
    assert model.blocks[0][0].running_var.data[0] == 3.0


@pytest.mark.parametrize("problem", ["missing", "unexpected", "wrong shape"])
def test_load_state_dict_refuses_each_kind_of_mismatch(problem):
    model = nn.Linear(3, 2)
    state = model.state_dict()
    if problem == "missing":
        del state["bias"]
    elif problem == "unexpected":
        state["scale"] = np.ones(1)
    else:
        state["weight"] = np.ones((3, 2))
    with pytest.raises(ValueError, match=problem):
        model.load_state_dict(state)


def test_loaded_arrays_are_copies():
    model = nn.Linear(3, 2)
    state = nn.Linear(3, 2, rng=5).state_dict()
    model.load_state_dict(state)
    state["weight"][:] = 0.0
    assert not np.all(model.weight.data == 0)


def test_load_state_dict_mismatch_lists_everything_and_loads_nothing():
    model = Tiny()
    before = model.state_dict()
    state = Tiny().state_dict()
    for value in state.values():
        value += 5.0                                           # would change every entry if loaded
    del state["conv.bias"]                                     # missing
    state["head.extra"] = np.zeros(3)                          # unexpected
    state["head.weight"] = np.zeros((3, 31))                   # wrong shape
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing" in message and "conv.bias" in message
    assert "unexpected" in message and "head.extra" in message
    assert "head.weight" in message and "(3, 32)" in message and "(3, 31)" in message
    for name, value in model.state_dict().items():
        assert np.array_equal(value, before[name]), f"{name} was loaded"


def test_load_state_dict_casts_to_each_tensors_dtype():
    model = nn.Linear(2, 2)
    model.load_state_dict({"weight": np.ones((2, 2), dtype=np.float64), "bias": np.zeros(2, dtype=np.int64)})
    assert model.weight.dtype == np.float32 and model.bias.dtype == np.float32
    assert np.all(model.weight.data == 1)


def test_train_and_eval_switch_every_module():
    model = Tiny()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    x = Tensor(normal((2, 1, 4, 4), 1, np.float32))
    model.eval()
    bn = model.blocks[0][0]
    running = bn.running_mean.numpy()
    model(x)
    assert np.array_equal(bn.running_mean.numpy(), running)   # eval: statistics frozen
    model.train()
    model(x)
    assert not np.array_equal(bn.running_mean.numpy(), running)


def test_zero_grad_and_backward_fill_every_parameter():
    model = Tiny()
    loss = F.cross_entropy(model(Tensor(normal((2, 1, 4, 4), 1, np.float32))), np.array([0, 2]))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_moves_in_place_and_returns_self(device):
    model = Tiny()
    parameters = list(model.parameters())
    expected = model.state_dict()
    assert model.to(device) is model
    assert all(a is b for a, b in zip(model.parameters(), parameters))
    assert all(t.device == device for _, t in model.named_tensors())
    x = Tensor(normal((2, 1, 4, 4), 1, np.float32), device=device)
    assert model.eval()(x).device == device                    # eval: leaves the running stats alone
    for name, value in model.state_dict().items():             # host copies wherever the model lives
        assert type(value) is np.ndarray and np.array_equal(value, expected[name])
    model.to("cpu")
    assert all(t.device == "cpu" for _, t in model.named_tensors())
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")


def test_sequential_indexing_and_repr():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.ReLU)
    assert [type(m).__name__ for m in seq] == ["Conv2d", "ReLU"]
    assert "(0): Conv2d(1, 2, kernel_size=(3, 3)" in repr(seq)
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), "relu")


def test_shared_module_is_counted_once():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = self.a

        def forward(self, x):
            return self.b(self.a(x))

    assert len(list(Shared().parameters())) == 2


def test_layers_name_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 2, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"linear: input has 4 features"):
        nn.Linear(3, 2)(Tensor(np.zeros((1, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"running_mean has shape \(3,\), expected \(2,\)"):
        F.batch_norm(Tensor(np.zeros((2, 2, 1, 1))), Tensor(np.zeros(3)), Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="register_buffer"):
        nn.Module().register_buffer("x", np.zeros(2))


def test_no_grad_forward_builds_no_graph():
    model = Tiny()
    with tinyseg.no_grad():
        y = model(Tensor(normal((1, 1, 4, 4), 1, np.float32)))
    assert not y.requires_grad
