"""to_onnx and `tinyseg export --format onnx`: one file, any image size, the same logits.

Each model is written once (from a 37 x 45 example) and run by ONNX Runtime
on drawn batches of drawn sizes, on random images and on images of the
built-in shapes data: its logits stay within 1e-4 (of the largest logit, or
of 1) of tinyseg's. The normalisation is the graph's first two nodes, so
`predict` and the file agree on the same raw image file. An operation with
no ONNX form is refused by name, and no file is written. Skipped without
onnx (and, for the runs, onnxruntime).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")

from interop_cases import SMALL, largest_difference, small_model  # noqa: E402
from strategies import seeds  # noqa: E402
from tinyseg import Tensor, no_grad  # noqa: E402
from tinyseg.checkpoint import save_checkpoint  # noqa: E402
from tinyseg.cli import main  # noqa: E402
from tinyseg.data import make_shapes  # noqa: E402
from tinyseg.interop import DEFAULT_OPSET, to_onnx  # noqa: E402
from tinyseg.interop.onnx_nodes import ExportError  # noqa: E402
from tinyseg.models import SegmentationModel, UNet, build_model  # noqa: E402
from tinyseg.nn import BatchNorm2d, Conv2d  # noqa: E402

NORMALIZATION = {"mean": [0.45, 0.5, 0.55], "std": [0.2, 0.25, 0.3]}
TOLERANCE = 1e-4                                     # of the largest |logit| (at least 1)


def tinyseg_logits(model, raw: np.ndarray) -> np.ndarray:
    """The logits tinyseg computes for images in [0, 1]: normalised, then the model itself."""
    mean = np.array(NORMALIZATION["mean"], np.float32)[:, None, None]
    std = np.array(NORMALIZATION["std"], np.float32)[:, None, None]
    with no_grad():
        return model(Tensor((raw - mean) / std)).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (model, onnxruntime session)}, each model written once."""
    onnxruntime = pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    written = {}
    for name in SMALL:
        model = small_model(name)
        path = str(folder / f"{name}.onnx")
        to_onnx(model, path, normalization=NORMALIZATION)
        written[name] = model, onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return written


@pytest.mark.parametrize("name", list(SMALL))
@settings(max_examples=8)
@given(batch=st.integers(1, 2), height=st.integers(1, 40), width=st.integers(1, 40), seed=seeds)
def test_one_file_gives_tinysegs_logits_at_every_size(exported, name, batch, height, width, seed):
    model, session = exported[name]
    raw = np.random.default_rng(seed).random((batch, 3, height, width), dtype=np.float32)
    theirs, = session.run(None, {"image": raw})
    ours = tinyseg_logits(model, raw)
    assert largest_difference(ours, theirs) <= TOLERANCE


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("size", [(32, 32), (37, 45), (64, 48)])
def test_real_images_give_the_same_logits(exported, name, size):
    """Images of the built-in shapes data, cropped to sizes that need padding."""
    model, session = exported[name]
    raw = np.stack(make_shapes(2, size=64, seed=7).images)[:, :, :size[0], :size[1]]
    theirs, = session.run(None, {"image": raw})
    assert largest_difference(tinyseg_logits(model, raw), theirs) <= TOLERANCE


def test_the_sliding_window_is_written_as_its_fcn_form(exported):
    """The file computes the sliding window's own logits: its to_fcn() form is the same network."""
    model, session = exported["naive"]
    raw = np.random.default_rng(0).random((1, 3, 11, 9), dtype=np.float32)
    theirs, = session.run(None, {"image": raw})
    assert largest_difference(tinyseg_logits(model, raw), theirs) <= TOLERANCE


def test_the_default_unet_file(tmp_path):
    """The README's model: its opset, its nodes, dynamic sizes, names and the normalisation."""
    model = UNet(in_channels=3, num_classes=4, base_channels=16, depth=3, batch_norm=True).eval()
    proto = to_onnx(model, str(tmp_path / "unet.onnx"), normalization=NORMALIZATION,
                    class_names=["background", "disc", "square", "triangle"])
    assert proto.opset_import[0].version == DEFAULT_OPSET == 17
    kinds = [node.op_type for node in proto.graph.node]
    assert kinds[:2] == ["Sub", "Div"]                          # (image - mean) / std comes first
    # 7 double convs of (Conv, BatchNormalization, Relu) x 2, 3 MaxPool, 3 ConvTranspose, 3 Concat,
    # the head's Conv; pad_to_multiple: Shape, Slice, Neg, Mod, Concat, Pad; crop_like: Shape,
    # Slice, Slice; and the normalisation's Sub, Div
    assert len(kinds) == 7 * 6 + 3 + 3 + 3 + 1 + 6 + 3 + 2 == 63
    assert kinds.count("Conv") == 15 and kinds.count("BatchNormalization") == 14
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    initializers = {tensor.name: tuple(tensor.dims) for tensor in proto.graph.initializer}
    for key, value in model.state_dict().items():
        assert initializers[key] == value.shape, key            # the state dict's names
    assert initializers["normalization.std"] == (1, 3, 1, 1)
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(meta["tinyseg.normalization"]) == NORMALIZATION
    assert meta["tinyseg.normalization_in_graph"] == "true"
    assert json.loads(meta["tinyseg.config"]) == model.config
    assert json.loads(meta["tinyseg.class_names"])[3] == "triangle"


def test_export_and_predict_agree_on_a_raw_image_file(tmp_path, capsys):
    """The CLI end to end: a checkpoint, `export --format onnx`, `predict`, the same labels."""
    onnxruntime = pytest.importorskip("onnxruntime")
    Image = pytest.importorskip("PIL.Image")
    model = small_model("unet", seed=3)
    checkpoint = str(tmp_path / "best.npz")
    arrays = {f"model.{key}": value for key, value in model.state_dict().items()}
    save_checkpoint(checkpoint, arrays, {"model_config": model.config, "normalization": NORMALIZATION,
                                         "class_names": ["a", "b", "c", "d"]})
    pixels = np.random.default_rng(4).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")

    assert main(["export", "--checkpoint", checkpoint, "--format", "onnx"]) == 0
    assert "best.onnx: ONNX opset 17" in capsys.readouterr().out
    assert main(["predict", "--checkpoint", checkpoint, str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "masks")]) == 0
    predicted = np.asarray(Image.open(tmp_path / "masks" / "photo_mask.png"))

    session = onnxruntime.InferenceSession(str(tmp_path / "best.onnx"),
                                           providers=["CPUExecutionProvider"])
    image = np.asarray(Image.open(tmp_path / "photo.png").convert("RGB"), dtype=np.float32) / 255
    logits, = session.run(None, {"image": image.transpose(2, 0, 1)[None]})
    np.testing.assert_array_equal(logits[0].argmax(axis=0), predicted)


class SumOverChannels(SegmentationModel):
    """A model with an operation the exporter has no ONNX form for (sum)."""

    name = "sum over channels"

    def __init__(self):
        super().__init__(in_channels=3, num_classes=1)

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(axis=1, keepdims=True)


class FusedOperators(SegmentationModel):
    """A model whose forward runs the fused operators itself: conv2d_relu, batch_norm_relu, a 1x1 head."""

    name = "fused operators"

    def __init__(self):
        super().__init__(in_channels=3, num_classes=2)
        self.conv = Conv2d(3, 4, 3, padding=1, rng=1)
        self.norm = BatchNorm2d(4)
        self.head = Conv2d(4, 2, 1, rng=2)
        rng = np.random.default_rng(3)
        self.norm.running_mean.data[:] = rng.standard_normal(4)   # so that ReLU cuts some of it
        self.norm.bias.data[:] = rng.standard_normal(4)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm.forward_relu(self.conv.forward_relu(x)))


def test_the_fused_operators_are_written_as_their_two_nodes(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model, path = FusedOperators().eval(), str(tmp_path / "fused.onnx")
    to_onnx(model, path)
    assert ([node.op_type for node in onnx.load(path).graph.node]
            == ["Conv", "Relu", "BatchNormalization", "Relu", "Conv"])
    raw = np.random.default_rng(0).random((2, 3, 9, 7), dtype=np.float32)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits, = session.run(None, {"image": raw})
    with no_grad():
        expected = model(Tensor(raw)).numpy()
    assert largest_difference(expected, logits) < TOLERANCE


def test_an_operation_without_an_onnx_form_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(ExportError, match="operation 'sum'.*the exporter writes add, batch_norm"):
        to_onnx(SumOverChannels(), str(tmp_path / "sum.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_refused_with_the_fix(tmp_path, capsys):
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        to_onnx(small_model("fcn"), str(tmp_path / "a.onnx"), opset=9)
    with pytest.raises(ValueError, match="float64.*float32 copy"):
        to_onnx(build_model(dict(SMALL["fcn"], dtype="float64")), str(tmp_path / "a.onnx"))
    with pytest.raises(ValueError, match="one per input channel"):
        to_onnx(small_model("fcn"), str(tmp_path / "a.onnx"), normalization={"mean": [0], "std": [1]})
    assert list(tmp_path.iterdir()) == []
    assert main(["export", "--checkpoint", str(tmp_path / "none.npz"), "--format", "onnx"]) == 1
    assert capsys.readouterr().err.startswith("tinyseg export: error: checkpoint")
    assert main(["export", "--checkpoint", "x.npz", "--format", "onnx", "--out", str(tmp_path)]) == 1
    assert "is a folder; give a file name, e.g. " in capsys.readouterr().err


def test_batch_norm_in_training_mode_is_exported_in_eval_mode_and_left_as_it_was(tmp_path):
    model = small_model("unet").train()
    proto = to_onnx(model, str(tmp_path / "u.onnx"))
    assert model.training and "BatchNormalization" in {node.op_type for node in proto.graph.node}


@pytest.mark.parametrize("opset", [13, 21])
def test_other_opsets_run_too(tmp_path, opset):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = small_model("unet")
    to_onnx(model, str(tmp_path / "u.onnx"), opset=opset, normalization=NORMALIZATION)
    session = onnxruntime.InferenceSession(str(tmp_path / "u.onnx"), providers=["CPUExecutionProvider"])
    raw = np.random.default_rng(1).random((1, 3, 19, 30), dtype=np.float32)
    theirs, = session.run(None, {"image": raw})
    assert largest_difference(tinyseg_logits(model, raw), theirs) <= TOLERANCE
