"""The three models: shapes, gradients, configs, the naive model == its FCN rewrite, learning."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg import Tensor, autograd, gradcheck, optim
from tinyseg import functional as F
from tinyseg.models import FCN, MODELS, SlidingWindow, UNet, build_model, sample_windows
from tinyseg.models import unet as unet_module
from tinyseg.nn.module import Sequential
from tinyseg.recording import Recording


def image(shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def tiny_models(dtype="float32"):
    return [
        SlidingWindow(in_channels=2, num_classes=3, window=5, width=3, depth=1, dtype=dtype),
        FCN(in_channels=2, num_classes=3, width=3, depth=2, dtype=dtype),
        UNet(in_channels=2, num_classes=3, base_channels=2, depth=2, dtype=dtype),
        UNet(in_channels=2, num_classes=3, base_channels=2, depth=2, down="conv", batch_norm=True, dtype=dtype),
    ]


# ----------------------------------------------------------------- shapes
@pytest.mark.parametrize("model", tiny_models(), ids=["naive", "fcn", "unet", "unet-conv-bn"])
@pytest.mark.parametrize("size", [(8, 8), (7, 5), (1, 3)])
def test_forward_and_predict_shapes(model, size):
    x = image((2, 2) + size)
    logits = model(x)
    assert logits.shape == (2, 3) + size and logits.dtype == np.float32
    labels = model.predict(x)
    assert labels.shape == (2,) + size and labels.dtype.kind == "i"
    assert not labels.requires_grad
    assert np.array_equal(labels.numpy(), logits.numpy().argmax(axis=1))


def test_unet_odd_size_37_by_45_with_depth_3():
    model = UNet(in_channels=3, num_classes=4, base_channels=4, depth=3, seed=1)
    x = image((1, 3, 37, 45))
    assert model(x).shape == (1, 4, 37, 45)


@given(h=st.integers(1, 20), w=st.integers(1, 20), depth=st.integers(0, 3))
def test_unet_takes_any_size(h, w, depth):
    model = UNet(in_channels=1, num_classes=2, base_channels=1, depth=depth)
    assert model(image((1, 1, h, w))).shape == (1, 2, h, w)


def test_unet_crop_keeps_the_top_left_of_a_padded_run():
    """An odd-sized input gives the same logits as itself zero-padded to the multiple, cropped."""
    model = UNet(in_channels=1, num_classes=2, base_channels=2, depth=2, seed=3)
    x = image((1, 1, 6, 7), 4)
    padded = F.pad(x, (0, 1, 0, 2))                            # 8 x 8, zeros at the bottom/right
    assert np.allclose(model(x).numpy(), model(padded).numpy()[:, :, :6, :7], atol=1e-6)


def torch_unet(torch, state: dict, x, depth: int, down: str, batch_norm: bool):
    """The U-Net written out in PyTorch with our weights: the wiring, checked independently."""
    tF = torch.nn.functional
    P = {name: torch.tensor(value) for name, value in state.items()}

    def block(t, prefix):                                      # [conv, (bn), relu] x 2
        for conv in (0, 3 if batch_norm else 2):
            bias = None if batch_norm else P[f"{prefix}.{conv}.bias"]
            t = tF.conv2d(t, P[f"{prefix}.{conv}.weight"], bias, padding=1)
            if batch_norm:
                bn = f"{prefix}.{conv + 1}"
                t = tF.batch_norm(t, None, None, P[f"{bn}.weight"], P[f"{bn}.bias"], training=True)
            t = tF.relu(t)
        return t

    h, w = x.shape[2:]
    multiple = 2 ** depth
    t = tF.pad(torch.tensor(x), (0, -w % multiple, 0, -h % multiple))
    skips = []
    for level in range(depth):
        t = block(t, f"encoder.{level}")
        skips.append(t)
        if down == "pool":
            t = tF.max_pool2d(t, 2)
        else:
            t = tF.conv2d(t, P[f"downsample.{level}.weight"], P[f"downsample.{level}.bias"], stride=2, padding=1)
    t = block(t, "bottleneck")
    for i, skip in enumerate(reversed(skips)):
        t = tF.conv_transpose2d(t, P[f"upsample.{i}.weight"], P[f"upsample.{i}.bias"], stride=2)
        t = block(torch.cat([skip, t], dim=1), f"decoder.{i}")
    return tF.conv2d(t, P["head.weight"], P["head.bias"])[:, :, :h, :w].numpy()


@pytest.mark.parametrize("down, batch_norm", [("pool", False), ("conv", True)])
def test_unet_matches_a_pytorch_transcription(down, batch_norm):
    torch = pytest.importorskip("torch")
    model = UNet(in_channels=2, num_classes=3, base_channels=3, depth=2, down=down, batch_norm=batch_norm,
                 seed=4, dtype="float64")
    rng = np.random.default_rng(5)
    for p in model.parameters():
        p.data += 0.1 * rng.standard_normal(p.shape)           # non-zero biases, non-trivial BN
    x = rng.standard_normal((2, 2, 7, 10))
    expected = torch_unet(torch, model.state_dict(), x, 2, down, batch_norm)
    assert np.allclose(model(Tensor(x)).numpy(), expected, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(depth=st.integers(0, 2), down=st.sampled_from(unet_module.DOWNSAMPLING), batch_norm=st.booleans(),
       base=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 99))
def test_unet_blocks_fused_equal_their_layers_one_by_one(depth, down, batch_norm, base, h, w, seed):
    """Each block runs a Conv2d or BatchNorm2d and its ReLU as one operator: the same logits and
    gradients as its layers run one by one (Sequential.forward); a recording sees the layers."""
    model = UNet(2, 3, base, depth, down, batch_norm, seed=seed, dtype="float64")
    x = image((2, 2, h, w), seed, np.float64)
    v = np.random.default_rng(seed).standard_normal((2, 3, h, w))

    def logits_and_grads():
        model.zero_grad()
        y = model(x)
        (y * Tensor(v)).sum().backward()
        ops = {entry.op for entry in autograd.topological_order(y) if isinstance(entry, autograd.Node)}
        return y.numpy(), [p.grad.copy() for p in model.parameters()], ops

    fused, fused_grads, fused_ops = logits_and_grads()
    with mock.patch.object(unet_module.DoubleConv, "forward", Sequential.forward):
        layers, layer_grads, layer_ops = logits_and_grads()
    np.testing.assert_allclose(fused, layers, rtol=1e-10, atol=1e-12)
    for got, want in zip(fused_grads, layer_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert ("conv2d_relu" in fused_ops) == (not batch_norm)
    assert ("batch_norm_relu" in fused_ops) == batch_norm
    assert not {"conv2d_relu", "batch_norm_relu"} & layer_ops
    with Recording() as seen:
        model(x)
    assert "conv2d_relu" not in {o.op for o in seen.operations}
    assert [o.op for o in seen.operations].count("relu") == 2 * (2 * depth + 1)


def test_classic_unet_has_31_030_658_parameters():
    model = UNet(in_channels=1, num_classes=2, base_channels=64, depth=4, down="pool", batch_norm=False)
    assert sum(p.size for p in model.parameters()) == 31_030_658
    assert [block[0].out_channels for block in model.encoder] == [64, 128, 256, 512]
    assert model.bottleneck[2].out_channels == 1024
    assert [(up.in_channels, up.out_channels) for up in model.upsample] == [
        (1024, 512), (512, 256), (256, 128), (128, 64)]
    assert [block[0].in_channels for block in model.decoder] == [1024, 512, 256, 128]   # after cat
    assert model.head.weight.shape == (2, 64, 1, 1)


def test_fcn_sees_depth_pixels_around_each_pixel():
    model = FCN(in_channels=1, num_classes=2, width=4, depth=3, seed=2)
    x = image((1, 1, 15, 15))
    base = model(x).numpy()
    changed = x.numpy()
    changed[0, 0, 7, 7 + 4] += 10.0                           # 4 > depth pixels right of the centre
    assert np.allclose(model(Tensor(changed)).numpy()[0, :, 7, 7], base[0, :, 7, 7])
    changed[0, 0, 7, 7 + 3] += 10.0                           # 3 = depth pixels away: in view
    assert not np.allclose(model(Tensor(changed)).numpy()[0, :, 7, 7], base[0, :, 7, 7])


# ----------------------------------------------------------------- gradients (float64)
@pytest.mark.parametrize("index", range(4), ids=["naive", "fcn", "unet", "unet-conv-bn"])
def test_model_gradients(index):
    model = tiny_models(dtype="float64")[index]
    if isinstance(model, SlidingWindow):
        model.chunk_size = 7                                   # several chunks, joined by cat
    x = Tensor(image((2, 2, 5, 6), 1, np.float64).data, requires_grad=not isinstance(model, SlidingWindow))
    params = list(model.parameters())
    rng = np.random.default_rng(2)
    for p in params:   # biases start at 0; on the zero-padded border a ReLU would then sit exactly on its kink
        p.data += 0.1 * rng.standard_normal(p.shape)
    inputs = ([x] if x.requires_grad else []) + params
    if x.requires_grad:
        fn = lambda x, *params: model(x)                       # noqa: E731
    else:
        fn = lambda *params: model(x)                          # noqa: E731
    assert gradcheck(fn, *inputs, max_elements=8)


# ----------------------------------------------------------------- the naive model and its FCN rewrite
def test_sliding_window_matches_its_fcn_rewrite():
    model = SlidingWindow(in_channels=3, num_classes=4, window=9, width=8, depth=2, seed=5)
    model.chunk_size = 500                                     # several chunks
    x = image((2, 3, 24, 20), 6)
    start = time.perf_counter()
    naive = model(x).numpy()
    naive_seconds = time.perf_counter() - start
    fcn = model.to_fcn()
    start = time.perf_counter()
    fast = fcn(x).numpy()
    fcn_seconds = time.perf_counter() - start
    print(f"\nSlidingWindow: {naive_seconds:.3f} s, to_fcn(): {fcn_seconds:.4f} s "
          f"({naive_seconds / fcn_seconds:.0f}x faster)")
    assert fast.shape == naive.shape == (2, 4, 24, 20)
    assert naive.std() > 0.1                                   # real logits, not all equal
    assert np.allclose(naive, fast, atol=1e-4)
    assert np.array_equal(model.predict(x).numpy(), fcn.predict(x).numpy())
    fcn.head.weight.data += 1.0                                # copies: the naive model is unchanged
    assert np.allclose(model(x).numpy(), naive)


def test_sliding_window_labels_each_pixel_from_its_zero_padded_window():
    """The docstring's 4x4 image with a 3x3 window: pixel a sees [0 0 0; 0 a b; 0 e f]."""
    model = SlidingWindow(in_channels=1, num_classes=2, window=3, width=2, depth=1, seed=0)
    x = image((1, 1, 4, 4), 7)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    logits = model(x).numpy()
    for row, col in [(0, 0), (1, 1), (3, 2)]:
        window = Tensor(padded[:, :, row:row + 3, col:col + 3].copy())
        assert np.allclose(model.forward_patches(window).numpy()[0], logits[0, :, row, col], atol=1e-6)


def test_sample_windows_picks_labelled_pixels_and_their_windows():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    masks = rng.integers(0, 3, size=(2, 9, 8))
    masks[:, :4] = 255                                         # the top half is unlabelled
    patches, labels = sample_windows(images, masks, count=200, rng=1, window=5)
    assert patches.shape == (200, 3, 5, 5) and labels.shape == (200,) and labels.dtype == np.int64
    assert set(labels.tolist()) <= {0, 1, 2}
    for patch, label in zip(patches, labels):                  # the centre is a labelled pixel of its class
        n, y, x = np.argwhere((images[:, 0] == patch[0, 2, 2]) & (images[:, 1] == patch[1, 2, 2]))[0]
        assert masks[n, y, x] == label and y >= 4
    again, _ = sample_windows(images, masks, count=200, rng=1, window=5)
    assert np.array_equal(patches, again)                      # a function of the seed
    model = SlidingWindow(in_channels=3, window=5, width=2, depth=1)
    assert model.sample_windows(images, masks, 10, rng=0)[0].shape == (10, 3, 5, 5)
    with pytest.raises(ValueError, match="ignore_index"):
        sample_windows(images, np.full((2, 9, 8), 255), count=3, rng=0, window=5)


def test_sliding_window_refuses_an_even_or_too_small_window():
    with pytest.raises(ValueError, match="odd"):
        SlidingWindow(window=4)
    with pytest.raises(ValueError, match="do not fit"):
        SlidingWindow(window=5, depth=3)


# ----------------------------------------------------------------- configs and seeds
@pytest.mark.parametrize("model", tiny_models(), ids=["naive", "fcn", "unet", "unet-conv-bn"])
def test_build_model_rebuilds_the_same_model_from_json(model):
    config = json.loads(json.dumps(model.config))
    rebuilt = build_model(config)
    assert type(rebuilt) is MODELS[config["name"]] and rebuilt.config == model.config
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        assert np.array_equal(a, b), name


def test_models_are_a_function_of_their_seed():
    a, b, c = FCN(seed=1, width=4), FCN(seed=1, width=4), FCN(seed=2, width=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not np.array_equal(a.state_dict()["features.0.weight"], c.state_dict()["features.0.weight"])


def test_models_registry_and_bad_configs():
    assert set(MODELS) == {"naive", "fcn", "unet"}
    assert build_model({"name": "unet", "base_channels": 2, "depth": 1}).config["name"] == "unet"
    with pytest.raises(ValueError, match="unknown model name 'resnet'"):
        build_model({"name": "resnet"})
    with pytest.raises(ValueError, match="bad arguments"):
        build_model({"name": "fcn", "widht": 3})
    with pytest.raises(ValueError, match="down"):
        UNet(down="stride")


def test_models_run_on_the_device(device):
    model = UNet(in_channels=1, num_classes=2, base_channels=2, depth=2, batch_norm=True, seed=0).eval()
    x = image((1, 1, 9, 10), 2)
    expected = model(x).numpy()
    model.to(device)
    assert np.allclose(model(x.to(device)).numpy(), expected, atol=1e-5)


# ----------------------------------------------------------------- learning
def stripes(seed=0):
    """A toy task: class 1 wherever the first channel is positive."""
    x = image((4, 2, 8, 8), seed)
    return x, (x.numpy()[:, 0] > 0).astype(np.int64)


@pytest.mark.parametrize("make", [
    lambda: FCN(in_channels=2, num_classes=2, width=4, depth=2, seed=0),
    lambda: UNet(in_channels=2, num_classes=2, base_channels=4, depth=2, batch_norm=True, seed=0),
], ids=["fcn", "unet-bn"])
def test_a_few_sgd_steps_reduce_the_loss(make):
    model = make()
    x, target = stripes()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_the_naive_model_learns_from_sampled_windows():
    model = SlidingWindow(in_channels=2, num_classes=2, window=5, width=4, depth=1, seed=0)
    x, target = stripes()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(30):
        patches, labels = sample_windows(x.data, target, count=64, rng=rng, window=5)
        optimizer.zero_grad()
        loss = F.cross_entropy(model.forward_patches(Tensor(patches)), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    accuracy = (model.predict(x).numpy() == target).mean()
    assert accuracy > 0.8


# ----------------------------------------------------------------- the shared base and its two hooks
def cross_entropy_ignoring(logits, target):
    return F.cross_entropy(logits, target, ignore_index=255)


@pytest.mark.parametrize("model", tiny_models(), ids=["naive", "fcn", "unet", "unet-conv-bn"])
def test_every_model_is_a_segmentation_model_with_one_input_check(model):
    from tinyseg.models import SegmentationModel
    assert isinstance(model, SegmentationModel)
    with pytest.raises(ValueError, match=rf"{type(model).__name__}: input must be a \(N, 2, H, W\)"):
        model.predict(image((1, 3, 6, 6)))


def test_whole_image_models_score_every_labelled_pixel_in_training_loss():
    model = FCN(in_channels=2, num_classes=3, width=3, depth=2)
    x = image((2, 2, 6, 5))
    masks = np.random.default_rng(1).integers(0, 3, (2, 6, 5))
    masks[0, 0] = 255
    loss = model.training_loss(x, masks, cross_entropy_ignoring, rng=None)
    assert loss.item() == pytest.approx(cross_entropy_ignoring(model(x), masks).item())
    assert model.inference_model() is model


def test_the_sliding_window_trains_on_its_own_sampled_windows():
    model = SlidingWindow(in_channels=2, num_classes=3, window=5, width=3, depth=1, windows_per_image=7)
    x = image((2, 2, 6, 5))
    masks = np.random.default_rng(1).integers(0, 3, (2, 6, 5))
    loss = model.training_loss(x, masks, cross_entropy_ignoring, np.random.default_rng(4))
    patches, labels = sample_windows(x.data, masks, 2 * 7, np.random.default_rng(4), window=5)
    expected = F.cross_entropy(model.forward_patches(Tensor(patches)), labels)
    assert loss.item() == pytest.approx(expected.item())
    assert model.windows_per_image == 7 and "windows_per_image" not in model.config   # not architecture


def test_the_sliding_window_predicts_through_its_fcn_form(monkeypatch):
    """predict() on a naive model is fast: it never runs the one-window-at-a-time forward()."""
    model = SlidingWindow(in_channels=2, num_classes=3, window=5, width=3, depth=1, seed=2)
    x = image((1, 2, 9, 7))
    slow_labels = model(x).numpy().argmax(axis=1)

    def refuse(*args):
        raise AssertionError("predict ran the sliding window one window at a time")

    monkeypatch.setattr(SlidingWindow, "forward", refuse)
    assert type(model.inference_model()).__name__ == "SlidingWindowFCN"
    assert np.array_equal(model.predict(x).numpy(), slow_labels)
