"""Watching a forward pass: every operation and every module's output, while a recording is on.

    with Recording() as seen:
        logits = model(x)
    seen.operations        # [Operation(op="conv2d", result=..., inputs=(x, w), attributes={...}), ...]
    seen.module_outputs    # [(model.encoder[0], its output Tensor), ...]

Backward needs only a Node (autograd.py): parents, a backward rule, a name,
a shape. Tools that look at a network need more, and only while they look:

    inspect    the output of each block of a trained model (its feature maps)
    export     each operation with its settings (stride, padding, axis...), to
               write the same network in another format
    graph      the module that ran each operation, to draw a box per block
    complexity which results are still alive after the forward pass, to count
               the memory a training step holds (counting.ResultArrays)

So they switch a recording on around one forward pass, and the operators
and modules report to it. Nothing is recorded, and nothing kept, when no
recording is on: an operator's report is one test of an empty list, and
Module.__call__ tracks which module is running only while one is on.

A recording holds every tensor it saw, so it keeps them alive until it is
dropped: record small inputs, or keep the recording short. A recording
that should keep less (complexity's, which must not keep results alive)
overrides `add_operation` and `add_module_output`.

An operator reports its settings as keyword arguments of Tensor.from_op
(`attributes`); they are what the operator was called with, e.g. conv2d's
{"stride": (1, 1), "padding": (1, 1)}. Operations run under no_grad() are
recorded too: inspection and export run without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_recordings: list = []          # the recordings that are on, outermost first
_running_modules: list = []     # the Modules whose forward() is running, outermost first,
                                # of those called while a recording is on


@dataclass
class Operation:
    """One operation seen by a recording: its name, result, inputs, settings and module."""
    op: str                     # "conv2d", "relu", ... (the Node's op name)
    result: object              # the Tensor it made
    inputs: tuple               # the Tensors it read, in order (their entries: the Node's parents)
    attributes: dict            # its settings, as the operator was called
    module: object              # the innermost Module running, or None (see module_running)


@dataclass(eq=False)                # two recordings are never "equal": each is its own
class Recording:
    """A context manager that collects what a forward pass does while it is on."""
    operations: list = field(default_factory=list)
    module_outputs: list = field(default_factory=list)     # (module, output) in the order they end

    def __enter__(self) -> "Recording":
        _recordings.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _recordings.remove(self)

    def add_operation(self, operation: Operation) -> None:
        self.operations.append(operation)

    def add_module_output(self, module, output) -> None:
        self.module_outputs.append((module, output))

    def outputs_of(self, model) -> dict:
        """{module path in `model`: its last output} for every module of `model` that ran."""
        paths = {id(module): name for name, module in model.named_modules()}
        return {paths[id(module)]: output for module, output in self.module_outputs
                if id(module) in paths}


def is_recording() -> bool:
    return bool(_recordings)


class module_running:
    """Context manager that Module.__call__ wraps around forward() while a recording is on.

    Operations reported inside it name `module` as the one that ran them (the
    innermost, when modules call modules): `tinyseg graph` draws a box per
    block, the ONNX export names each node after its module. A module called
    before the recording was switched on is not known to it.
    """

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        _running_modules.append(self.module)

    def __exit__(self, *exc_info):
        _running_modules.pop()


def report_operation(op: str, result, inputs: tuple, attributes: dict) -> None:
    """Tensor.from_op calls this: every recording that is on gets the operation."""
    module = _running_modules[-1] if _running_modules else None
    for recording in _recordings:
        recording.add_operation(Operation(op, result, tuple(inputs), dict(attributes), module))


def report_module_output(module, output) -> None:
    """Module.__call__ calls this when a forward() returns."""
    for recording in _recordings:
        recording.add_module_output(module, output)
