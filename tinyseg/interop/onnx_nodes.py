"""Each tinyseg operation as ONNX nodes: the table the exporter (onnx_export.py) reads.

A recorded operation (recording.Operation) says what ran: its name, the
tensors it read and its settings. Each writer below appends the ONNX nodes
that compute the same thing, its settings turned into ONNX attributes:

    tinyseg                                  ONNX
    conv2d(x, w, b; stride, padding)         Conv(x, w, b; kernel_shape, strides, pads)
    conv2d_relu(x, w, b; stride, padding)    Conv(...), then Relu
    conv_transpose2d(...; output_padding)    ConvTranspose(x, w, b; ..., output_padding)
    max_pool2d(x; kernel, stride, padding)   MaxPool(x; kernel_shape, strides, pads)
    batch_norm, evaluation form              BatchNormalization(x, weight, bias, mean, var; epsilon)
    batch_norm_relu, evaluation form         BatchNormalization(...), then Relu
    relu, neg, exp, log                      Relu, Neg, Exp, Log
    add, sub, mul, div                       Add, Sub, Mul, Div   (NumPy's broadcasting is ONNX's)
    softmax, log_softmax (dim)               Softmax, LogSoftmax (axis)
    cat(tensors; axis)                       Concat(...; axis)
    pad(x; pad, value)                       Pad(x, pads, value)
    pad_to_multiple(x; multiple)             Shape, Slice, Neg, Mod, Concat, then Pad
    crop_like(x; reference)                  Shape, Slice, then Slice

Two layouts differ:
- pads. tinyseg's padding (ph, pw) pads both sides of H and W; ONNX lists
  every axis's start, then every axis's end: pads = [ph, pw, ph, pw]. F.pad's
  (left, right, top, bottom), from the last axis back, becomes
  [0, 0, top, left, 0, 0, bottom, right] over (N, C, H, W).
- sizes. The last two rows work out their sizes inside the graph, from the
  Shape of the tensor at hand, so one file pads and crops right at every size:
      shape = Shape(x) = [N, C, H, W];  hw = shape[2:4] = [H, W]
      added = Mod(-hw, multiple)        (Mod with fmod=0 is Python's %: -37 % 8 = 3)
      pads  = [0, 0, 0, 0, 0, 0, added_h, added_w]

An operation in neither SAME_INPUTS nor NODE_WRITERS has no ONNX form here;
write_operation raises ExportError naming it, before any file is written.
"""

from __future__ import annotations

import numpy as np

try:
    from onnx import helper, numpy_helper
except ImportError as error:                                     # onnx is an optional extra
    raise ImportError("exporting to ONNX needs the onnx package: pip install 'tinyseg[onnx]'") from error


class ExportError(ValueError):
    """The model cannot be written in the requested format (and nothing was written)."""


class OnnxGraph:
    """The ONNX nodes and initializers being written, and the ONNX name of every tensor seen.

    tensor_names: {id(tensor): name} of the model's parameters and buffers
    (their state-dict names, "encoder.0.0.weight"); each becomes an
    initializer of that name when an operation first reads it. Any other leaf
    an operation reads (the 2 of `x * 2`) becomes a constant initializer
    "constant_N". So a forward that makes a Tensor out of raw arrays loses
    its tie to the input, which is why SlidingWindow exports its to_fcn() form.
    """

    def __init__(self, tensor_names: dict):
        self.tensor_names = tensor_names
        self.names = {}              # id(tensor) -> its ONNX name, for every tensor already in the graph
        self.nodes, self.initializers = [], []
        self.scope = ""              # the module path of the operation being written: node names
        self.count = 0

    def unique(self, prefix: str) -> str:
        """A new name: "conv2d_7"."""
        self.count += 1
        return f"{prefix}_{self.count}"

    def name_of(self, tensor) -> str:
        """The ONNX name of `tensor`: a value written before, or an initializer made now (a leaf)."""
        key = id(tensor)
        if key not in self.names:
            name = self.tensor_names.get(key) or self.unique("constant")
            self.initializers.append(numpy_helper.from_array(tensor.numpy(), name))
            self.names[key] = name
        return self.names[key]

    def constant(self, array, prefix: str) -> str:
        """An initializer holding `array` (ONNX's pads, axes, ...); returns its name."""
        name = self.unique(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op_type: str, inputs: list, output: str | None = None, **attributes) -> str:
        """Append one ONNX node; returns its output's name (a new one unless `output` is given)."""
        output = output or self.unique(op_type.lower())
        name = f"{self.scope}/{op_type}_{len(self.nodes)}" if self.scope else f"{op_type}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def height_and_width(self, value: str) -> str:
        """The int64 [H, W] of an (N, C, H, W) value, computed in the graph: Shape, then Slice."""
        shape = self.node("Shape", [value])                                    # [N, C, H, W]
        return self.node("Slice", [shape, self.constant([2], "starts"), self.constant([4], "ends"),
                                   self.constant([0], "axes")])                 # [H, W]


# ----------------------------------------------------------------- the writers
def conv2d(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """Conv: weight (O, C, kh, kw), as in tinyseg and PyTorch."""
    (ph, pw), weight = operation.attributes["padding"], operation.inputs[1]
    graph.node("Conv", inputs, output, kernel_shape=list(weight.shape[2:]),
               strides=list(operation.attributes["stride"]), pads=[ph, pw, ph, pw])


def conv2d_relu(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """Conv, then Relu: tinyseg's one operator is ONNX's two."""
    before_relu = graph.unique("conv")
    conv2d(graph, operation, inputs, before_relu)
    graph.node("Relu", [before_relu], output)


def conv_transpose2d(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """ConvTranspose: weight (C_in, C_out, kh, kw), as in tinyseg and PyTorch."""
    (ph, pw), weight = operation.attributes["padding"], operation.inputs[1]
    graph.node("ConvTranspose", inputs, output, kernel_shape=list(weight.shape[2:]),
               strides=list(operation.attributes["stride"]), pads=[ph, pw, ph, pw],
               output_padding=list(operation.attributes["output_padding"]))


def max_pool2d(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """MaxPool: ONNX's padding never wins a window either (tinyseg pads with -inf)."""
    ph, pw = operation.attributes["padding"]
    graph.node("MaxPool", inputs, output, kernel_shape=list(operation.attributes["kernel_size"]),
               strides=list(operation.attributes["stride"]), pads=[ph, pw, ph, pw])


def batch_norm(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """BatchNormalization with the running statistics: y = (x - mean) / sqrt(var + eps) * weight + bias."""
    settings = operation.attributes
    if settings["training"]:
        raise ExportError("batch_norm ran with the batch's own statistics (training mode, or no "
                          "running statistics); export a model in eval() mode")
    x = operation.inputs[0]
    channels = x.shape[1]
    weight = (graph.name_of(settings["weight"]) if settings["weight"] is not None
              else graph.constant(np.ones(channels, x.dtype), "ones"))
    bias = (graph.name_of(settings["bias"]) if settings["bias"] is not None
            else graph.constant(np.zeros(channels, x.dtype), "zeros"))
    mean, var = graph.name_of(settings["running_mean"]), graph.name_of(settings["running_var"])
    graph.node("BatchNormalization", [inputs[0], weight, bias, mean, var], output,
               epsilon=float(settings["eps"]))


def batch_norm_relu(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """BatchNormalization, then Relu: tinyseg's one operator is ONNX's two."""
    before_relu = graph.unique("batch_norm")
    batch_norm(graph, operation, inputs, before_relu)
    graph.node("Relu", [before_relu], output)


def softmax(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    graph.node("Softmax", inputs, output, axis=operation.attributes["dim"])


def log_softmax(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    graph.node("LogSoftmax", inputs, output, axis=operation.attributes["dim"])


def cat(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    graph.node("Concat", inputs, output, axis=operation.attributes["axis"])


def pad(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """Pad with fixed widths: F.pad's (before, after) pairs, last axis first -> ONNX's starts, ends."""
    widths, ndim = operation.attributes["pad"], operation.inputs[0].ndim
    starts, ends = [0] * ndim, [0] * ndim
    for k in range(len(widths) // 2):                            # widths[0:2] is the last axis
        starts[ndim - 1 - k], ends[ndim - 1 - k] = widths[2 * k], widths[2 * k + 1]
    pads = graph.constant(np.array(starts + ends, dtype=np.int64), "pads")
    value = graph.constant(np.array(operation.attributes["value"], dtype=operation.inputs[0].dtype),
                           "pad_value")
    graph.node("Pad", [inputs[0], pads, value], output, mode="constant")


def pad_to_multiple(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """Pad H and W at the bottom and right up to the next multiple, worked out from the shape."""
    multiple = operation.attributes["multiple"]
    hw = graph.height_and_width(inputs[0])                                        # [H, W]
    added = graph.node("Mod", [graph.node("Neg", [hw]),
                               graph.constant(np.array([multiple, multiple], np.int64), "multiple")],
                       fmod=0)                                                    # [-H % m, -W % m]
    pads = graph.node("Concat", [graph.constant(np.zeros(6, np.int64), "zeros"), added], axis=0)
    graph.node("Pad", [inputs[0], pads], output, mode="constant")                # zeros, as tinyseg


def crop_like(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """x[:, :, :H, :W] with (H, W) the reference's height and width, read in the graph."""
    hw = graph.height_and_width(graph.name_of(operation.attributes["reference"]))  # [H, W]
    graph.node("Slice", [inputs[0], graph.constant(np.zeros(2, np.int64), "starts"), hw,
                         graph.constant(np.array([2, 3], np.int64), "axes")], output)


SAME_INPUTS = {"relu": "Relu", "neg": "Neg", "exp": "Exp", "log": "Log",   # one node, the same
               "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}     # inputs, no settings
NODE_WRITERS = {"conv2d": conv2d, "conv2d_relu": conv2d_relu, "conv_transpose2d": conv_transpose2d,
                "max_pool2d": max_pool2d, "batch_norm": batch_norm, "batch_norm_relu": batch_norm_relu,
                "softmax": softmax, "log_softmax": log_softmax, "cat": cat, "pad": pad,
                "pad_to_multiple": pad_to_multiple, "crop_like": crop_like}


def write_operation(graph: OnnxGraph, operation, inputs: list, output: str) -> None:
    """The ONNX nodes of one recorded operation, or ExportError naming an operation with none."""
    if operation.op in SAME_INPUTS:
        graph.node(SAME_INPUTS[operation.op], inputs, output)
    elif operation.op in NODE_WRITERS:
        NODE_WRITERS[operation.op](graph, operation, inputs, output)
    else:
        where = f" in module {graph.scope!r}" if graph.scope else ""
        raise ExportError(f"operation {operation.op!r}{where} (result shape {operation.result.shape}) "
                          f"has no ONNX form in tinyseg; the exporter writes "
                          f"{', '.join(sorted(SAME_INPUTS.keys() | NODE_WRITERS.keys()))}; "
                          f"nothing was written")
