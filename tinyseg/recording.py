"""Watching a forward pass: every operation and every module's output, while a recording is on.

    with Recording() as seen:
        logits = model(x)
    seen.operations        # [Operation(op="conv2d", result=..., inputs=(x, w), attributes={...}), ...]
    seen.module_outputs    # [(model.encoder[0], its output Tensor), ...]

Backward needs only a Node (autograd.py): parents, a backward rule, a name.
Tools that look at a network need more, and only while they look:

    inspect    the output of each block of a trained model (its feature maps)
    export     each operation with its settings (stride, padding, axis...), to
               write the same network in another format
    complexity each operation's shapes, to count what it costs

So they switch a recording on around one forward pass, and the operators
and modules report to it. Nothing is recorded, and nothing kept, when no
recording is on: an operator's report is one test of an empty list.

A recording holds every tensor it saw, so it keeps them alive until it is
dropped: record small inputs, or keep the recording short.

An operator reports its settings as keyword arguments of Tensor.from_op
(`attributes`); they are what the operator was called with, e.g. conv2d's
{"stride": (1, 1), "padding": (1, 1)}. Operations run under no_grad() are
recorded too: inspection and export run without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_recordings: list = []          # the recordings that are on, outermost first


@dataclass
class Operation:
    """One operation seen by a recording: its name, result, inputs, settings and module."""
    op: str                     # "conv2d", "relu", ... (the Node's op name)
    result: object              # the Tensor it made
    inputs: tuple               # the Tensors it read, in order (the Node's parents)
    attributes: dict            # its settings, as the operator was called
    module: object              # the innermost Module running, or None


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

    def outputs_of(self, model) -> dict:
        """{module path in `model`: its last output} for every module of `model` that ran."""
        paths = {id(module): name for name, module in model.named_modules()}
        return {paths[id(module)]: output for module, output in self.module_outputs
                if id(module) in paths}


def is_recording() -> bool:
    return bool(_recordings)


def report_operation(op: str, result, inputs: tuple, attributes: dict, module) -> None:
    """Tensor.from_op calls this: every recording that is on gets the operation."""
    for recording in _recordings:
        recording.operations.append(Operation(op, result, tuple(inputs), dict(attributes), module))


def report_module_output(module, output) -> None:
    """Module.__call__ calls this when a forward() returns."""
    for recording in _recordings:
        recording.module_outputs.append((module, output))
