"""predict: exact tiled labels, every bad input in one error, one output per input, normalisation."""

import numpy as np
import pytest

from tinyseg.autograd import no_grad
from tinyseg.checkpoint import save_checkpoint
from tinyseg.cli import main
from tinyseg.complexity.receptive_fields import downsampling_period, field_reach, receptive_field, round_up
from tinyseg.data import DataError, normalize
from tinyseg.models import FCN, SlidingWindow, UNet
from tinyseg.nn.layers import BatchNorm2d
from tinyseg.predict import output_stems, predict_files
from tinyseg.tensor import Tensor
from tinyseg.predictor import Predictor
from tinyseg.tiling import tile_margin, tile_spans, tiled

Image = pytest.importorskip("PIL.Image")


def with_running_statistics(model, seed: int = 0):
    """The model in eval mode, its BatchNorms holding running statistics other than 0 and 1."""
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, BatchNorm2d):
            module.running_mean.data[:] = rng.normal(size=module.running_mean.shape)
            module.running_var.data[:] = rng.random(module.running_var.shape) + 0.5
    return model.eval()


def whole_logits(net, image: np.ndarray) -> np.ndarray:
    with no_grad():
        return net(Tensor(image[None])).data[0]                         # (K, H, W)


def top_two_gap(logits: np.ndarray) -> np.ndarray:
    ordered = np.sort(logits, axis=0)
    return ordered[-1] - ordered[-2]                                    # (H, W)


MODELS = {
    "unet": lambda: with_running_statistics(UNet(3, 4, base_channels=4, depth=2, batch_norm=True, seed=1)),
    "unet-conv-down": lambda: UNet(3, 4, base_channels=4, depth=2, down="conv", seed=2).eval(),
    "fcn": lambda: FCN(3, 4, width=8, depth=3, seed=3),
    "naive": lambda: SlidingWindow(3, 4, window=7, width=4, depth=2, seed=4),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiles_give_the_whole_image_pass(name):
    model = MODELS[name]()
    net = model.inference_model().eval()
    image = np.random.default_rng(5).random((3, 150, 97)).astype(np.float32)   # odd remainders
    margin, period = tile_margin(net), downsampling_period(net)
    assert tile_spans(round_up(150, period[0]), 16, margin[0], period[0])[1:]   # several tiles

    def logits_of(tile):
        with no_grad():
            return net(Tensor(tile)).data[0]

    whole = whole_logits(net, image)
    assert np.abs(tiled(logits_of, image, period, margin, tile_size=16) - whole).max() < 1e-4
    labels = Predictor(model, tile_size=16).labels(image)
    clear = top_two_gap(whole) > 1e-3
    assert labels.shape == (150, 97)
    assert np.array_equal(labels[clear], whole.argmax(axis=0)[clear])


def test_a_margin_below_the_reach_changes_the_logits():
    """The test above can fail: one period less of margin is not exact."""
    net = MODELS["unet"]()
    image = np.random.default_rng(6).random((3, 150, 97)).astype(np.float32)
    margin, period = tile_margin(net), downsampling_period(net)
    short = (margin[0] - period[0], margin[1] - period[1])

    def logits_of(tile):
        with no_grad():
            return net(Tensor(tile)).data[0]

    assert np.abs(tiled(logits_of, image, period, short, tile_size=16) - whole_logits(net, image)).max() > 1e-3


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def picture(seed, shape=(21, 30, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_every_bad_input_in_one_error_and_nothing_written(tmp_path):
    good = save_png(tmp_path / "good.png", picture(0, (21, 30)))
    colour = save_png(tmp_path / "colour.png", picture(1))
    (tmp_path / "text.png").write_text("not an image")
    save_png(tmp_path / "whole.jpg", picture(2, (64, 64, 3)))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    Image.fromarray(picture(3)).save(tmp_path / "anim.gif")
    (tmp_path / "folder").mkdir()
    inputs = [good, tmp_path / "missing.png", tmp_path / "folder", tmp_path / "text.png",
              tmp_path / "cut.jpg", tmp_path / "anim.gif", colour]
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        predict_files(Predictor(FCN(1, 3, width=4, depth=1)), [str(p) for p in inputs], str(out))
    reported = [path for path, _ in caught.value.problems]
    assert reported == [str(p) for p in inputs[1:]]
    message = str(caught.value)
    assert message.startswith("6 problems in the inputs of predict")
    for words in ["no such file", "a folder", "not an image", "unsupported type '.gif'",
                  "a colour image, but the model takes a grey image"]:
        assert words in message
    assert not out.exists()


def test_inputs_with_the_same_stem_keep_their_own_outputs(tmp_path):
    files = [save_png(tmp_path / "a.png", picture(0)), tmp_path / "a.jpg",
             save_png(tmp_path / "x" / "b.png", picture(1)), save_png(tmp_path / "y" / "b.png", picture(2)),
             save_png(tmp_path / "c.png", picture(3))]
    Image.fromarray(picture(4)).save(files[1], quality=95)
    model = FCN(3, 4, width=8, depth=2, seed=1)
    written = predict_files(Predictor(model), [str(f) for f in files], str(tmp_path / "out"))
    names = [str(mask).split("/")[-1] for _, mask, _ in written]
    assert names == ["a.png_mask.png", "a.jpg_mask.png", "x_b_mask.png", "y_b_mask.png", "c_mask.png"]
    for source, mask, overlay in written:
        expected = model.predict(Tensor(read(source)[None])).data[0]
        with Image.open(mask) as stored:
            assert np.array_equal(np.asarray(stored), expected)
        with Image.open(overlay) as stored:
            assert stored.size == (30, 21)


def read(path):
    from tinyseg.data import read_image
    return read_image(path)


def test_output_stems_stay_plain_when_unique_and_grow_only_on_a_clash(tmp_path):
    paths = [tmp_path / "p" / "a.png", tmp_path / "q" / "A.tif", tmp_path / "q" / "b.png"]
    assert output_stems(paths) == ["a.png", "A.tif", "b"]              # case-blind clash
    same = [tmp_path / "a.png", tmp_path / "a.png"]
    assert len(set(output_stems(same))) == 2


def test_a_grey_image_is_repeated_for_a_colour_model(tmp_path):
    grey = picture(7, (21, 30))
    path = save_png(tmp_path / "grey.png", grey)
    model = FCN(3, 4, width=8, depth=2, seed=2)
    (_, mask, _), = predict_files(Predictor(model), [str(path)], str(tmp_path / "out"))
    repeated = np.repeat((grey / 255.0).astype(np.float32)[None], 3, axis=0)   # (3, H, W)
    with Image.open(mask) as stored:
        assert np.array_equal(np.asarray(stored), model.predict(Tensor(repeated[None])).data[0])


def save_model_checkpoint(path, model, normalization=None):
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    save_checkpoint(str(path), arrays, {"model_config": model.config, "normalization": normalization})


def test_the_checkpoint_normalization_is_applied_tiles_and_all(tmp_path):
    photo = picture(8, (70, 45, 3))
    path = save_png(tmp_path / "photo.png", photo)
    model = with_running_statistics(UNet(3, 4, base_channels=4, depth=2, batch_norm=True, seed=3))
    normalization = {"mean": [0.9, 0.1, 0.5], "std": [0.05, 0.3, 2.0]}
    save_model_checkpoint(tmp_path / "model.npz", model, normalization)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(tmp_path / "model.npz"), str(path), "--out", str(out),
                 "--tile-size", "16"]) == 0
    x = normalize(read(path), normalization["mean"], normalization["std"])
    logits = whole_logits(model, x)
    with Image.open(out / "photo_mask.png") as stored:
        labels = np.asarray(stored)
    clear = top_two_gap(logits) > 1e-3
    assert np.array_equal(labels[clear], logits.argmax(axis=0)[clear])
    unnormalized = whole_logits(model, read(path)).argmax(axis=0)
    assert not np.array_equal(labels, unnormalized)                      # normalising matters here


def test_cli_reports_bad_inputs_in_one_message(tmp_path, capsys):
    save_model_checkpoint(tmp_path / "model.npz", FCN(1, 3, width=4, depth=1))
    colour = save_png(tmp_path / "colour.png", picture(1))
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(tmp_path / "model.npz"), str(colour),
                 str(tmp_path / "missing.jpg"), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("tinyseg predict: error: 2 problems in the inputs of predict")
    assert "Traceback" not in err and "missing.jpg: no such file" in err
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_reach_is_about_half_the_receptive_field(name):
    """A field of f pixels holds its output pixel, so it reaches (f - 1) / 2 each way if centred,
    and at most f - 1 one way; a chain of 3x3 layers is centred: a field of 2d + 1 reaches d."""
    net = MODELS[name]().inference_model().eval()
    reach, field = field_reach(net), receptive_field(net)
    assert all((f - 1) // 2 <= r <= f - 1 for r, f in zip(reach, field)), (reach, field)
    if name == "fcn":
        assert reach == (3, 3) and field == (7, 7)
