"""inspect: feature maps are the recorded outputs, saliency is the gradient, uncertainty is entropy.

The library functions are checked against what they claim to be (the
Recording's outputs, central differences in float64, -sum p log p), and the
command once end to end on a tiny trained checkpoint, with each mistake a
user can make answered in one line.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinyseg.autograd import no_grad
from tinyseg.cli import main
from tinyseg.complexity import field_reach
from tinyseg.inspection import (boundary_pixel, channel_grid, class_boundaries, entropy,
                                entropy_by_region, input_gradient, inspect_image, mass_radius,
                                pixel_gradient, stage_outputs)
from tinyseg.inspection.command import summary
from tinyseg.inspection.feature_maps import centre_crop
from tinyseg.models import FCN, SlidingWindow, UNet
from tinyseg.predictor import Predictor
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor

from strategies import tie_free
from tiny_runs import tiny_checkpoint

Image = pytest.importorskip("PIL.Image")

MODELS = {
    "unet": lambda dtype="float32": UNet(3, 4, base_channels=4, depth=2, seed=1, dtype=dtype).eval(),
    "fcn": lambda dtype="float32": FCN(3, 4, width=3, depth=3, seed=2, dtype=dtype),
    "naive": lambda dtype="float32": SlidingWindow(3, 4, window=7, width=3, depth=2, seed=3, dtype=dtype),
}
STAGES = {
    "unet": ["encoder.0", "encoder.1", "bottleneck", "decoder.0", "decoder.1", "head"],
    "fcn": ["features.1", "features.3", "features.5", "head"],
    "naive": ["features.1", "features.3", "head"],
}


def image(seed, height=20, width=24, channels=3, dtype=np.float32):
    return np.random.default_rng(seed).random((channels, height, width)).astype(dtype)


# ----------------------------------------------------------------- feature maps
@pytest.mark.parametrize("name", sorted(MODELS))
def test_feature_maps_are_the_recorded_outputs_of_the_stages_the_model_names(name):
    net = MODELS[name]().inference_model().eval()
    x = image(0)
    maps = stage_outputs(net, x)
    assert list(maps) == net.stages() == STAGES[name]
    with no_grad(), Recording() as seen:
        net(Tensor(x[None]))
    recorded = seen.outputs_of(net)
    for stage, values in maps.items():
        assert values.shape == recorded[stage].shape[1:]
        np.testing.assert_array_equal(values, recorded[stage].data[0])
    assert maps["head"].shape == (4, 20, 24)


@given(channels=st.integers(1, 20), height=st.integers(1, 9), width=st.integers(1, 9))
def test_channel_grid_holds_every_channel_stretched_in_its_cell(channels, height, width):
    maps = np.random.default_rng(channels).normal(size=(channels, height, width))
    grid = channel_grid(maps)
    cols = int(np.ceil(np.sqrt(channels)))
    rows = -(-channels // cols)
    assert grid.shape == (rows * (height + 1) - 1, cols * (width + 1) - 1)
    for c in range(channels):
        cell = grid[(c // cols) * (height + 1):][:height, (c % cols) * (width + 1):][:, :width]
        if maps[c].max() > maps[c].min():
            assert cell.ravel()[maps[c].argmax()] == 255 and cell.ravel()[maps[c].argmin()] == 0


@given(height=st.integers(1, 700), width=st.integers(1, 700), period=st.sampled_from([1, 4, 8]))
def test_the_feature_window_is_the_middle_on_the_grid(height, width, period):
    rows, cols = centre_crop((height, width), (period, period), side=256)
    for span, length in ((rows, height), (cols, width)):
        assert 0 <= span.start and span.stop <= length
        assert span.stop - span.start == min(length, 256)
        assert span.start % period == 0
        assert abs((span.start + span.stop) / 2 - length / 2) <= period        # rounded down to the grid


# ----------------------------------------------------------------- saliency
def central_differences(net, x, pixel, label, step=1e-6):
    """d logits[label, y, x] / d x by (f(x + h) - f(x - h)) / 2h, one input value at a time."""
    def score(values):
        with no_grad():
            return float(net(Tensor(values[None])).data[0, label, pixel[0], pixel[1]])
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (score(up) - score(down)) / (2 * step)
    return gradient


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_saliency_is_the_gradient_finite_differences_find_in_float64(name):
    net = MODELS[name]("float64").inference_model().eval()
    x = tie_free((3, 8, 8), seed=4)                       # no max-pool ties for a step to flip
    label, gradient = input_gradient(net, x, (3, 5))
    with no_grad():
        assert label == int(net(Tensor(x[None])).data[0, :, 3, 5].argmax())
    expected = central_differences(net, x, (3, 5), label)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(gradient).sum() > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_on_a_large_image_the_gradient_is_that_of_the_whole_image_within_the_reach(name):
    model = MODELS[name]()
    picture = image(5, 70, 61)
    whole = pixel_gradient(Predictor(model), picture, (50, 20))               # one pass
    tiled = pixel_gradient(Predictor(model, tile_size=16), picture, (50, 20))  # a window around it
    assert whole.window == (slice(0, 70), slice(0, 61))
    assert tiled.window[0].stop - tiled.window[0].start < 70 and tiled.label == whole.label
    np.testing.assert_allclose(whole.gradient[:, tiled.window[0], tiled.window[1]], tiled.gradient,
                               rtol=1e-4, atol=1e-6)
    outside = np.ones(picture.shape[1:], dtype=bool)
    outside[tiled.window] = False
    assert not whole.strength[outside].any()              # nothing beyond the window moves the score
    reach = field_reach(model.inference_model().eval())
    rows, cols = np.nonzero(whole.strength)
    assert np.abs(rows - 50).max() <= reach[0] and np.abs(cols - 20).max() <= reach[1]


@given(height=st.integers(1, 12), width=st.integers(1, 12), seed=st.integers(0, 1000),
       share=st.sampled_from([0.5, 0.9, 1.0]))
def test_the_mass_radius_is_the_smallest_square_holding_the_share(height, width, seed, share):
    rng = np.random.default_rng(seed)
    strength = rng.random((height, width)) * (rng.random((height, width)) > 0.3)
    centre = (int(rng.integers(height)), int(rng.integers(width)))
    radius = mass_radius(strength, centre, share)
    if strength.sum() == 0:
        assert radius is None
        return

    def held(r):
        return strength[max(0, centre[0] - r):centre[0] + r + 1, max(0, centre[1] - r):centre[1] + r + 1].sum()
    assert held(radius) >= share * strength.sum() * (1 - 1e-12)
    assert radius == 0 or held(radius - 1) < share * strength.sum()


def test_the_mass_radius_of_a_spot_and_of_a_ring():
    spot = np.zeros((9, 9))
    spot[4, 4] = 1
    assert mass_radius(spot, (4, 4)) == 0
    ring = np.zeros((9, 9))
    ring[1, 1:8] = ring[7, 1:8] = ring[1:8, 1] = ring[1:8, 7] = 1     # all at distance 3
    assert mass_radius(ring, (4, 4)) == 3


def test_the_default_pixel_is_on_a_boundary_nearest_the_centre():
    labels = np.zeros((9, 9), dtype=np.int64)
    assert boundary_pixel(labels) is None
    labels[:, 6:] = 2
    assert boundary_pixel(labels) == (4, 5)


# ----------------------------------------------------------------- uncertainty
def test_entropy_is_zero_when_sure_and_log_k_when_not():
    sure = np.zeros((4, 2, 3))
    sure[1] = 1
    assert np.array_equal(entropy(sure), np.zeros((2, 3)))
    np.testing.assert_allclose(entropy(np.full((4, 2, 3), 0.25)), np.log(4))
    np.testing.assert_allclose(entropy(np.array([0.5, 0.5, 0.0])[:, None, None]), np.log(2))


@given(classes=st.integers(1, 6), seed=st.integers(0, 1000))
def test_entropy_is_minus_sum_p_log_p_between_0_and_log_k(classes, seed):
    logits = np.random.default_rng(seed).normal(scale=3, size=(classes, 4, 5))
    p = np.exp(logits) / np.exp(logits).sum(axis=0)
    h = entropy(p)
    np.testing.assert_allclose(h, -(p * np.log(p)).sum(axis=0), atol=1e-12)
    assert (h >= 0).all() and (h <= np.log(classes) + 1e-12).all()


def test_class_boundaries_mark_both_sides_of_each_edge():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]])
    expected = np.array([[0, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
    assert np.array_equal(class_boundaries(labels), expected)
    boundary, interior = entropy_by_region(expected * 1.0, labels)
    assert (boundary, interior) == (1.0, 0.0)


# ----------------------------------------------------------------- everything on one image
def test_inspect_image_reports_what_each_part_computes(device):
    model = MODELS["unet"]().to(device)
    picture = image(6, 24, 20)
    seen = inspect_image(Predictor(model, device=device), picture, pixel=(7, 9))
    assert list(seen.feature_maps) == STAGES["unet"] and seen.chosen == "given"
    np.testing.assert_allclose(seen.probabilities.sum(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(seen.entropy, entropy(seen.probabilities))
    assert seen.gradient.pixel == (7, 9) and seen.gradient.label == seen.labels[7, 9]
    field = seen.field
    assert 2 * seen.effective_radius + 1 <= max(field)           # the effective field is inside


def test_a_model_that_sees_one_class_is_inspected_at_the_centre():
    model = FCN(3, 2, width=2, depth=1, seed=0)
    model.head.bias.data[:] = [30.0, -30.0]                       # class 0 everywhere, surely
    picture = image(1, 9, 12)
    seen = inspect_image(Predictor(model), picture)
    assert seen.chosen == "centre" and seen.gradient.pixel == (4, 6)
    assert np.isnan(seen.boundary_entropy) and seen.interior_entropy < 1e-6
    assert "the model sees one class only" in summary(model, "a.png", picture, seen, ["a", "b"])


# ----------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("inspect_run"), "unet")


def save_png(path, array):
    Image.fromarray(array).save(path)
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("tinyseg inspect: error: "), err
    return err


def test_inspect_writes_its_pictures_and_prints_what_they_show(checkpoint, tmp_path, capsys):
    photo = save_png(tmp_path / "a.png", np.random.default_rng(7).integers(0, 256, (30, 26), np.uint8))
    out = tmp_path / "seen"
    assert main(["inspect", "--checkpoint", str(checkpoint), str(photo), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = ["features_01_encoder.0.png", "features_02_encoder.1.png", "features_03_bottleneck.png",
             "features_04_decoder.0.png", "features_05_decoder.1.png", "features_06_head.png",
             "saliency.png", "probabilities.png", "entropy.png"]
    assert sorted(path.name for path in out.iterdir()) == sorted(names)
    assert "(1, 4, 32, 28)" in printed and "(1, 16, 8, 7)" in printed        # padded to 4s, grey repeated
    assert "effective field: 90% of the gradient within" in printed
    assert "theoretical field 44 x 44" in printed and "mean entropy" in printed
    assert Image.open(out / "probabilities.png").size[0] > 4 * 200           # one panel per class


@pytest.mark.parametrize("arguments, words", [
    (["--pixel", "900", "3"], "--pixel 900 3 is outside the 30 x 26 image: Y must be 0..29 and X 0..25"),
    (["--pixel", "3", "-1"], "--pixel 3 -1 is outside"),
])
def test_a_pixel_outside_the_image_is_one_line_naming_the_option(checkpoint, tmp_path, capsys,
                                                                  arguments, words):
    photo = save_png(tmp_path / "a.png", np.zeros((30, 26), np.uint8))
    assert main(["inspect", "--checkpoint", str(checkpoint), str(photo), "--out",
                 str(tmp_path / "o"), *arguments]) == 1
    assert words in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_bad_image_or_out_is_one_line(checkpoint, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "file").write_text("taken")
    photo = save_png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    for image_path, out, words in [(tmp_path / "missing.png", tmp_path / "o", "no such file"),
                                   (tmp_path / "text.png", tmp_path / "o", "text.png"),
                                   (photo, tmp_path / "file", "--out")]:
        assert main(["inspect", "--checkpoint", str(checkpoint), str(image_path), "--out", str(out)]) == 1
        assert words in error_line(capsys)
