"""Probabilities and flip TTA: each pixel sums to 1, tiles give the whole pass, flips are undone exactly.

    predict --probs      STEM_probs.npy, float16 (K, H, W), its argmax the mask
    predict --tta flip   the mean of the probabilities of the image's 4 flips, each flipped back
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinyseg.autograd import no_grad
from tinyseg.cli import main
from tinyseg.models import FCN, SlidingWindow, UNet
from tinyseg.nn.conv import Conv2d
from tinyseg.predictor import Predictor, flip_averaged
from tinyseg.tensor import Tensor

from tiny_runs import tiny_checkpoint

Image = pytest.importorskip("PIL.Image")

MODELS = {                        # built once: each Predictor measures its model's reach on first tiles
    "unet": UNet(3, 4, base_channels=4, depth=2, down="conv", seed=1).eval(),
    "fcn": FCN(3, 4, width=4, depth=3, seed=2),
    "naive": SlidingWindow(3, 4, window=7, width=3, depth=2, seed=3),
}


def image(seed, height, width):
    return np.random.default_rng(seed).random((3, height, width)).astype(np.float32)


def whole_pass(model, picture):
    """Softmax of one pass over the whole image, written out: exp(l - max) / sum."""
    with no_grad():
        logits = model.inference_model().eval()(Tensor(picture[None])).data[0].astype(np.float64)
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


@pytest.mark.parametrize("name", sorted(MODELS))
@given(height=st.integers(1, 40), width=st.integers(1, 40), tile=st.integers(4, 24), seed=st.integers(0, 99))
def test_probabilities_sum_to_one_and_tiles_give_the_whole_pass(name, height, width, tile, seed):
    model, picture = MODELS[name], image(seed, height, width)
    tiled = Predictor(model, tile_size=tile).probabilities(picture)           # (K, H, W)
    assert tiled.shape == (4, height, width) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled.sum(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(tiled, whole_pass(model, picture), atol=1e-5)


def mirrored(seed, height, width):
    """A (3, H, W) image equal to its left-right and its up-down mirror images, bit for bit."""
    quarter = image(seed, -(-height // 2), -(-width // 2))                          # top-left corner
    half = np.concatenate([quarter, np.flip(quarter, 1)[:, height % 2:]], axis=1)     # (3, H, ceil(W/2))
    return np.ascontiguousarray(np.concatenate([half, np.flip(half, 2)[:, :, width % 2:]], axis=2))


@pytest.mark.parametrize("name", sorted(MODELS))
@given(height=st.integers(1, 24), width=st.integers(1, 24), seed=st.integers(0, 99))
def test_flip_tta_of_a_mirror_symmetric_image_is_exactly_mirror_symmetric(name, height, width, seed):
    picture = mirrored(seed, height, width)
    assert np.array_equal(picture, np.flip(picture, 1)) and np.array_equal(picture, np.flip(picture, 2))
    predictor = Predictor(MODELS[name])
    averaged = predictor.probabilities(picture, tta="flip")
    assert np.array_equal(averaged, np.flip(averaged, 2))                     # bit for bit
    assert np.array_equal(averaged, np.flip(averaged, 1))
    np.testing.assert_allclose(averaged.sum(axis=0), 1, atol=1e-6)
    assert np.array_equal(predictor.labels(picture, tta="flip"), averaged.argmax(axis=0))


def symmetric_kernels(model):
    """Each convolution kernel replaced by the mean of its 4 flips: the model then commutes with flips."""
    for module in model.modules():
        if isinstance(module, Conv2d):
            w = module.weight.data
            module.weight.data = (w + w[..., ::-1, :] + w[..., :, ::-1] + w[..., ::-1, ::-1]) / 4
    return model


@given(height=st.integers(1, 20), width=st.integers(1, 20), seed=st.integers(0, 99))
def test_flip_tta_changes_nothing_for_a_model_that_commutes_with_flips(height, width, seed):
    model = symmetric_kernels(FCN(3, 4, width=4, depth=2, seed=seed))
    predictor, picture = Predictor(model), image(seed, height, width)
    np.testing.assert_allclose(predictor.probabilities(picture, tta="flip"),
                               predictor.probabilities(picture), atol=1e-6)


def test_flip_averaged_undoes_each_flip():
    """A pixel-by-pixel 'model': each flip, undone, puts every answer back where it belongs."""
    picture = image(0, 5, 7)

    def pointwise(x):                                             # each pixel's answer from itself alone
        return x[:2] * 2                                          # (2, H, W)
    assert np.array_equal(flip_averaged(pointwise, picture), picture[:2] * 2)


def test_an_unknown_tta_names_the_option():
    with pytest.raises(ValueError, match="--tta must be one of none, flip, got 'rotate'"):
        Predictor(MODELS["fcn"]).probabilities(image(0, 4, 4), tta="rotate")


# ----------------------------------------------------------------- predict --probs --tta
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("probs_run"), "unet")


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_predict_probs_writes_float16_probabilities_whose_argmax_is_the_mask(checkpoint, tmp_path,
                                                                             capsys, tta):
    photo = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (37, 29, 3), np.uint8)).save(photo)
    for tile, out in (("512", "whole"), ("8", "tiled")):
        assert main(["predict", "--checkpoint", checkpoint, str(photo), "--out", str(tmp_path / out),
                     "--probs", "--tta", tta, "--tile-size", tile]) == 0
    assert "a_probs.npy" in capsys.readouterr().out
    whole, tiled = (np.load(tmp_path / out / "a_probs.npy") for out in ("whole", "tiled"))
    assert whole.dtype == np.float16 and whole.shape == (4, 37, 29)
    np.testing.assert_allclose(whole.astype(np.float32).sum(axis=0), 1, atol=2e-3)
    np.testing.assert_allclose(whole.astype(np.float32), tiled.astype(np.float32), atol=1e-3)
    mask = np.asarray(Image.open(tmp_path / "whole" / "a_mask.png"))
    clear = np.sort(whole, axis=0)[-1] > np.sort(whole, axis=0)[-2]          # no float16 tie
    assert np.array_equal(mask[clear], whole.argmax(axis=0)[clear])
    predictor, _ = Predictor.from_checkpoint(checkpoint)
    from tinyseg.data import read_image
    expected = predictor.probabilities(read_image(photo), tta=tta)
    np.testing.assert_allclose(whole.astype(np.float32), expected, atol=1e-3)
