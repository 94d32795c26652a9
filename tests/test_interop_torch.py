"""to_torch / from_torch: the same network in PyTorch gives the same logits, and comes back.

For each model, drawn batches of drawn sizes (odd ones included, which the
U-Net pads to a multiple of 2**depth and crops back) give logits within 1e-5
of the largest logit in float32 and within 1e-10 in float64, in eval mode,
with batch-norm running statistics that are not the identity. A twin trained
a few steps in PyTorch comes back with the same labels. Skipped without torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from interop_cases import SMALL, largest_difference, small_model  # noqa: E402
from strategies import seeds  # noqa: E402
from tinyseg import Tensor, no_grad  # noqa: E402
from tinyseg.interop import copy_weights, from_torch, save_torch_file, to_torch  # noqa: E402
from tinyseg.interop.torch_twins import TorchFCN, build_torch_model  # noqa: E402
from tinyseg.models import build_model  # noqa: E402

TOLERANCE = {"float32": 1e-5, "float64": 1e-10}      # of the largest |logit| (at least 1)


def logits_of_both(model, module, x: np.ndarray) -> tuple:
    with no_grad():
        ours = model(Tensor(x)).numpy()
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    return ours, theirs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(SMALL))
@settings(max_examples=6)
@given(batch=st.integers(1, 2), height=st.integers(1, 29), width=st.integers(1, 29), seed=seeds)
def test_the_twin_gives_the_same_logits(name, dtype, batch, height, width, seed):
    model = small_model(name, dtype, seed)
    model.chunk_size = 50                                       # the sliding window: ragged chunks
    module = to_torch(model)
    assert not module.training and module.chunk_size == 50
    assert next(module.parameters()).dtype == getattr(torch, dtype)
    channels = model.in_channels
    x = np.random.default_rng(seed).standard_normal((batch, channels, height, width)).astype(dtype)
    ours, theirs = logits_of_both(model, module, x)
    assert ours.shape == (batch, model.num_classes, height, width)
    assert largest_difference(ours, theirs) <= TOLERANCE[dtype]


@pytest.mark.parametrize("name", list(SMALL))
def test_parameter_names_and_shapes_are_one_to_one(name):
    model = small_model(name, "float32", 0)
    module = to_torch(model)
    theirs = {key: tuple(value.shape) for key, value in module.state_dict().items()
              if not key.endswith("num_batches_tracked")}
    assert theirs == {key: value.shape for key, value in model.state_dict().items()}
    assert list(theirs) == list(model.state_dict())              # in the same order, too


@pytest.mark.parametrize("name", list(SMALL))
def test_from_torch_brings_back_every_number(name):
    model = small_model(name, "float64", 3)
    back = from_torch(to_torch(model))
    assert back.config == model.config and not back.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)


def test_a_twin_trained_in_pytorch_comes_back_with_the_same_labels():
    """A few SGD steps in PyTorch (running statistics move too), then the labels in tinyseg."""
    model = small_model("unet", "float32", 1)
    module = to_torch(model).train()
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.standard_normal((4, 3, 20, 28)).astype(np.float32))
    masks = torch.from_numpy(rng.integers(0, 4, (4, 20, 28)))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(module(images), masks).backward()
        optimizer.step()
    module.eval()
    trained = from_torch(module)
    assert not np.allclose(trained.state_dict()["head.weight"], model.state_dict()["head.weight"])
    assert not np.allclose(trained.state_dict()["encoder.0.1.running_mean"],
                           model.state_dict()["encoder.0.1.running_mean"])
    x = rng.standard_normal((2, 3, 23, 17)).astype(np.float32)
    with torch.no_grad():
        their_logits = module(torch.from_numpy(x)).numpy()
    labels = trained.predict(Tensor(x)).numpy()
    top_two = np.sort(their_logits, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-4                # no near-tie between two classes
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(labels[clear], their_logits.argmax(axis=1)[clear])


def test_the_saved_file_loads_into_the_module_build_torch_model_makes(tmp_path):
    """What `tinyseg export --format torch` writes, read back as the README shows."""
    model = small_model("unet", "float32", 4)
    path = tmp_path / "model.pt"
    save_torch_file(model, str(path), normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
                    class_names=["background", "disc", "square", "triangle"])
    saved = torch.load(path)                                    # weights_only: no pickled classes
    assert saved["config"] == model.config and saved["normalization"]["std"] == [0.25] * 3
    assert saved["class_names"][1] == "disc"
    module = build_torch_model(saved["config"]).eval()
    module.load_state_dict(saved["state_dict"])
    x = np.random.default_rng(5).standard_normal((1, 3, 13, 21)).astype(np.float32)
    ours, theirs = logits_of_both(model, module, x)
    assert largest_difference(ours, theirs) <= TOLERANCE["float32"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]   # no temporary file left


def test_mismatches_are_named():
    model = small_model("fcn", "float32", 0)
    with pytest.raises(ValueError, match="different shapes.*features.0.weight"):
        copy_weights(model, TorchFCN(in_channels=3, num_classes=4, width=5, depth=3))
    with pytest.raises(ValueError, match="pass config="):
        from_torch(TorchFCN(in_channels=3, num_classes=4, width=6, depth=3))
    with pytest.raises(ValueError, match="'name' must be one of.*'naive as FCN'"):
        to_torch(build_model(SMALL["naive"]).inference_model())   # its to_fcn() form has no twin
    with pytest.raises(ValueError, match="bad arguments for 'fcn'"):
        build_torch_model(dict(SMALL["fcn"], windows=3))
