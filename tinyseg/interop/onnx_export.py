"""to_onnx: a tinyseg model written as an ONNX file, from the forward pass it records.

    to_onnx(model, "unet.onnx", normalization={"mean": [...], "std": [...]})

    session = onnxruntime.InferenceSession("unet.onnx")
    logits, = session.run(None, {"image": image[None]})    # (1, C, H, W) float32 in [0, 1]

How. The model runs once, on a small example (1, C, 37, 45), under no_grad()
and in evaluation mode, inside a Recording (recording.py): every operator
reports its name, the tensors it read and its settings. onnx_nodes.py
writes each of those operations as ONNX nodes, in the order they ran: the
graph `tinyseg graph` draws, operator for operator. The default U-Net
(base 16, depth 3, batch norm) becomes Conv, BatchNormalization, Relu,
MaxPool, ConvTranspose and Concat nodes, with a few shape nodes for its
padding and crop (see the table in onnx_nodes.py).

Names. Parameters and buffers become initializers under their state-dict
names ("encoder.0.0.weight", "encoder.0.1.running_mean"); the input is
"image", the output "logits"; a node is named by the module that ran it
("encoder.0.0/Conv_0").

Sizes. The batch, height and width are dynamic ("batch", "height",
"width"): no node depends on the example's size. Convolutions and pooling
take any size, and the U-Net pads and crops with F.pad_to_multiple and
F.crop_like, whose ONNX form reads the size from the tensor's shape. The
example is 37 x 45 so that every pad and crop is seen doing something.
One file serves every size the model accepts.

Normalization: in the graph, and in the metadata. Given the checkpoint's
normalization, the graph starts with (image - mean) / std (Sub, Div;
initializers "normalization.mean" and "normalization.std", the std floored
as tinyseg.data.normalize floors it), so the file takes an image in [0, 1]
exactly as `predict` reads it. The same numbers are in metadata_props
("tinyseg.normalization", with "tinyseg.normalization_in_graph": "true") for
anyone who reads them; do not apply them a second time.

The sliding window is written as its to_fcn() form (model.inference_model()):
the same labels, its Linear classifier reshaped to the k' x k' convolution
"head.weight". float32 only: ONNX Runtime's CPU provider has no float64
convolution.
"""

from __future__ import annotations

import json

import numpy as np

import tinyseg
from tinyseg.autograd import no_grad
from tinyseg.files import write_atomically
from tinyseg.data.normalize import MIN_STD
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor

DEFAULT_OPSET = 17
MIN_OPSET = 13                   # Softmax's axis and Slice, Pad with their sizes as inputs
EXAMPLE_SIZE = (37, 45)          # odd: every pad and crop of the example does something


def import_onnx():
    """The onnx package, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package: pip install 'tinyseg[onnx]'") from None
    return onnx


def check_opset(opset, newest: int) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"package knows), got {opset!r}; {DEFAULT_OPSET} suits ONNX Runtime >= 1.16")


def normalization_tensors(normalization: dict, channels: int, dtype, device) -> tuple:
    """(mean, std) as (1, C, 1, 1) Tensors, std floored at MIN_STD as tinyseg.data.normalize does."""
    mean = np.asarray(normalization["mean"], dtype=dtype)
    std = np.maximum(np.asarray(normalization["std"], dtype=dtype), MIN_STD)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"normalization must hold {channels} mean(s) and std(s), one per input "
                         f"channel, got mean {normalization['mean']!r}, std {normalization['std']!r}")
    return (Tensor(mean.reshape(1, channels, 1, 1), device=device),
            Tensor(std.reshape(1, channels, 1, 1), device=device))


def record_forward(network, image: Tensor, normalization: dict | None) -> tuple:
    """(operations, logits, {id(constant): name}): what network((image - mean) / std) does.

    Runs under no_grad() and in evaluation mode; the network's mode is put back after.
    """
    named_constants = {}
    was_training = network.training
    network.eval()                                          # BatchNorm: the running statistics
    try:
        with no_grad(), Recording() as seen:
            x = image
            if normalization is not None:
                mean, std = normalization_tensors(normalization, image.shape[1], image.dtype,
                                                  image.device)
                named_constants = {id(mean): "normalization.mean", id(std): "normalization.std"}
                x = (image - mean) / std                    # (1, C, H, W), as predict normalises
            logits = network(x)
    finally:
        network.train(was_training)
    return seen.operations, logits, named_constants


def onnx_graph(network, operations: list, image: Tensor, logits: Tensor, named_constants: dict):
    """The OnnxGraph of the recorded operations: image -> ... -> logits."""
    from tinyseg.interop.onnx_nodes import OnnxGraph, write_operation
    tensor_names = {id(tensor): name for name, tensor in network.named_tensors()}
    tensor_names.update(named_constants)
    module_paths = {id(module): path for path, module in network.named_modules()}
    graph = OnnxGraph(tensor_names)
    graph.names[id(image)] = "image"
    graph.names[id(logits)] = "logits"
    for operation in operations:
        graph.scope = module_paths.get(id(operation.module), "")
        inputs = [graph.name_of(tensor) for tensor in operation.inputs]
        output = graph.names.get(id(operation.result)) or graph.unique(operation.op)
        graph.names[id(operation.result)] = output
        write_operation(graph, operation, inputs, output)
    return graph


def metadata(model, normalization: dict | None, class_names) -> dict:
    """metadata_props: what the file is, as JSON strings."""
    return {"tinyseg.config": json.dumps(model.config),
            "tinyseg.normalization": json.dumps(normalization),
            "tinyseg.normalization_in_graph": "true" if normalization is not None else "false",
            "tinyseg.class_names": json.dumps(class_names),
            "tinyseg.input": "image: (batch, channels, height, width) float32 in [0, 1]; any height "
                             "and width",
            "tinyseg.output": "logits: (batch, classes, height, width); labels = argmax over axis 1"}


def to_onnx(model, path: str, opset: int = DEFAULT_OPSET, normalization: dict | None = None,
            class_names: list | None = None):
    """Write `model` to `path` as ONNX, checked by onnx.checker; returns the onnx.ModelProto.

    model: a SlidingWindow (written as its to_fcn() form), FCN or UNet in
    float32. normalization: {"mean": [...], "std": [...]} per input channel
    (a checkpoint's meta["normalization"]): the graph then starts with
    (image - mean) / std and takes images in [0, 1]. class_names: stored in
    the metadata. The file is replaced in one atomic step, and only after
    every operation found its ONNX form: an operation without one raises
    ExportError naming it, and nothing is written.
    """
    onnx = import_onnx()
    from onnx import helper
    check_opset(opset, onnx.defs.onnx_opset_version())
    network = model.inference_model()                       # the sliding window: its to_fcn() form
    first = next(network.parameters(), None)
    if first is not None and first.dtype != np.float32:
        raise ValueError(f"to_onnx: the model is {first.dtype}; ONNX Runtime runs float32 "
                         f"convolutions only. Export a float32 copy: m = build_model({{**model.config, "
                         f"'dtype': 'float32'}}); m.load_state_dict(model.state_dict())")
    image = Tensor(np.zeros((1, model.in_channels) + EXAMPLE_SIZE, dtype=np.float32),
                   device=first.device if first is not None else "cpu")
    operations, logits, named_constants = record_forward(network, image, normalization)
    if logits.ndim != 4 or logits.shape[2:] != EXAMPLE_SIZE:
        raise ValueError(f"to_onnx: a segmentation model maps (N, C, H, W) to (N, classes, H, W), "
                         f"but a {image.shape} example gave {logits.shape}")
    graph = onnx_graph(network, operations, image, logits, named_constants)

    float32 = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("image", float32,
                                            ["batch", model.in_channels, "height", "width"])]
    outputs = [helper.make_tensor_value_info("logits", float32,
                                             ["batch", logits.shape[1], "height", "width"])]
    doc = (f"tinyseg {model.config['name']}: image (batch, {model.in_channels}, height, width) in "
           f"[0, 1] -> logits (batch, {logits.shape[1]}, height, width)"
           + ("; normalised in the graph" if normalization is not None else ""))
    proto = helper.make_model_gen_version(
        helper.make_graph(graph.nodes, f"tinyseg_{model.config['name']}", inputs, outputs,
                          graph.initializers, doc_string=doc),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="tinyseg", producer_version=tinyseg.__version__)
    helper.set_model_props(proto, metadata(model, normalization, class_names))
    onnx.checker.check_model(proto, full_check=True)       # the graph is valid and its shapes infer
    write_atomically(path, proto.SerializeToString())
    return proto
