"""A picture of the autograd graph: Graphviz DOT text, and a file drawn from it.

Every Tensor made by an operation points to its graph entry, a Node
(autograd.py) that remembers the operation's name (`.op`), its parents and
its result's shape; autograd.py walks exactly this graph backwards. Drawing
it shows what backward will visit. The Nodes hold only what backward needs,
so the picture's other facts (each result's dtype, the module that made it)
come from a Recording (recording.py) of the same forward pass, which saw
every operation with its result, its inputs and the module running:

    x = Tensor(np.ones((1, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    with Recording() as seen:
        loss = (x @ w).relu().sum()
    print(to_dot(loss, seen, names={"x": x, "w": w}))

    digraph tinyseg {
      ...
      v0 [label="x\\n(1, 3) float64\\nrequires grad", shape=box, ...]     a value: a tensor
      v1 [label="w\\n(3, 2) float64\\nrequires grad", shape=box, ...]
      op2 [label="matmul", shape=ellipse, ...]                           an operator
      v2 [label="(1, 2) float64\\nrequires grad", shape=box, ...]         its result
      ...
      v0 -> op2                                              edges, in data-flow order
      v1 -> op2
      op2 -> v2
      ...
    }

Two kinds of node: an ellipse per operation (its name) and a box per tensor
(its shape and dtype, whether it requires grad, and its name when a module
knows it: "encoder.0.0.weight"). An edge runs from each input tensor to the
operator and from the operator to its result.

A U-Net forward pass has well over a hundred nodes. `group_depth` gathers them into
boxes, one per module path cut to that many parts: with 2, everything the
first encoder block made sits in a box "encoder.0", and inside it the
parameters it owns. The recording knows which module was running when each
operation ran (`operation.module`), and the model's named_modules() gives
that module its path.

`draw(tensor, seen, "graph.svg")` renders the text with the Graphviz `dot` program
when it is installed (apt install graphviz, brew install graphviz) and
otherwise writes "graph.dot" and says how to render it. The DOT text itself
needs nothing but Python.

`python -m tinyseg graph --model unet --size 64 64 --out unet.svg` draws a
model's forward pass and its cross-entropy loss (tinyseg/commands/graph.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tinyseg import autograd
from tinyseg.files import write_atomically
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor

FORMATS = ("svg", "png", "pdf")       # what `dot` is asked to write; ".dot" is the text itself
PARAMETER_STYLE = 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"'
INPUT_STYLE = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
VALUE_STYLE = "shape=box, style=rounded"
OPERATOR_STYLE = 'shape=ellipse, style=filled, fillcolor="#fde9c9"'


# ----------------------------------------------------------------- the graph as lists
def graph_order(root: Tensor, seen: Recording) -> list:
    """(tensor, operation) for every tensor of the graph ending at `root`, each after the
    tensors it was made from; operation: the one `seen` recorded making it, None for a leaf.

    The operations come in the order backward walks (reversed):
    autograd.topological_order. Each leaf (a parameter, an input, a constant)
    is placed just before the first operation that reads it, so a layer's
    weights sit next to the layer. This also brings in the leaves that do not
    require grad (an input image), which that order leaves out since no
    gradient goes to them.
    """
    made = {id(operation.result.node): operation for operation in seen.operations
            if operation.result.node is not None}            # a Node -> the operation it records
    order, placed = [], set()
    for entry in autograd.topological_order(root):
        if not isinstance(entry, autograd.Node):
            if entry is root:
                order.append((root, None))                   # a graph of one leaf
            continue                                         # a leaf: placed by its first reader
        operation = made.get(id(entry))
        if operation is None:
            raise ValueError(f"to_dot: the {entry.op!r} operation (result {entry.shape}) was not "
                             f"recorded; make the tensor inside `with Recording() as seen:`")
        for tensor in operation.inputs:
            if tensor.node is None and id(tensor) not in placed:
                placed.add(id(tensor))
                order.append((tensor, None))
        order.append((operation.result, operation))
    return order


def module_paths(model) -> tuple:
    """({id(module): "encoder.0"}, {id(parameter): "encoder.0.0.weight"}) for a model (or None)."""
    if model is None:
        return {}, {}
    modules = {id(module): name for name, module in model.named_modules()}
    parameters = {id(tensor): name for name, tensor in model.named_tensors()}
    return modules, parameters


def group_of(path: str, depth: int) -> str:
    """The first `depth` parts of a dotted module path: ("encoder.0.3", 2) -> "encoder.0"."""
    return ".".join(path.split(".")[:depth]) if path else ""


# ----------------------------------------------------------------- DOT text
def quote(text: str) -> str:
    """A DOT string: in double quotes, with quotes and backslashes escaped, lines split by \\n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def value_label(tensor: Tensor, name: str) -> str:
    """A tensor's box: its name (if known), shape and dtype, and whether it requires grad."""
    lines = [name] if name else []
    lines.append(f"{tensor.shape} {tensor.dtype}")
    if tensor.requires_grad:
        lines.append("requires grad")
    return "\n".join(lines)


def to_dot(tensor: Tensor, seen: Recording, model=None, group_depth: int = 0,
           names: dict | None = None) -> str:
    """Graphviz DOT text of the graph that produced `tensor`.

    seen: the Recording that was on while the graph was made (every operation
    of it must have run inside). model: the Module that made it, if any; its
    named_parameters() (and buffers) name the parameter boxes. group_depth > 0
    (needs `model`) puts each operator, its result and the parameters a module
    owns into nested `subgraph cluster_...` boxes, one per module path cut to
    group_depth parts.
    names: more boxes to name, {"x": x, "w": w}, for tensors no module owns.

    Node ids: "v{i}" for the i-th tensor in data-flow order, "op{i}" for the
    operation that made tensor i. The graph reads top to bottom.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: tensor must be a Tensor, got {type(tensor).__name__}")
    if not isinstance(seen, Recording):
        raise TypeError(f"to_dot: seen must be the Recording of the forward pass that made the "
                        f"tensor, got {type(seen).__name__}")
    if group_depth < 0:
        raise ValueError(f"to_dot: group_depth must be >= 0, got {group_depth}")
    if group_depth and model is None:
        raise ValueError("to_dot: group_depth needs the model, to know each module's path")
    modules, names_by_id = module_paths(model)
    names_by_id.update({id(t): name for name, t in (names or {}).items()})
    order = graph_order(tensor, seen)
    index = {id(t): i for i, (t, _) in enumerate(order)}

    nodes_by_group = {}           # group path -> DOT node lines ("" is the top level)
    edges = []
    for i, (t, operation) in enumerate(order):
        name = names_by_id.get(id(t), "")
        if operation is not None:  # made by an operation: an operator node, then its result
            group = group_of(modules.get(id(operation.module), ""), group_depth)   # who ran it
            nodes_by_group.setdefault(group, []).append(
                f"op{i} [label={quote(operation.op)}, {OPERATOR_STYLE}]")
            edges += [f"v{index[id(parent)]} -> op{i}" for parent in operation.inputs]
            edges.append(f"op{i} -> v{i}")
            style = VALUE_STYLE
        else:                     # a leaf: a parameter, an input or a constant
            group = group_of(name.rsplit(".", 1)[0] if "." in name else "", group_depth)
            style = PARAMETER_STYLE if name else INPUT_STYLE
        nodes_by_group.setdefault(group, []).append(f"v{i} [label={quote(value_label(t, name))}, {style}]")

    lines = ["digraph tinyseg {",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=11];',
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [arrowsize=0.6];']
    lines += ["  " + node for node in nodes_by_group.pop("", [])]
    lines += cluster_lines(nodes_by_group)
    lines += ["  " + edge for edge in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def cluster_lines(nodes_by_group: dict) -> list:
    """Nested `subgraph cluster_N { label="encoder.0"; ... }` blocks, one per group path.

    The box "encoder" holds the box "encoder.0", which holds that block's
    nodes. Boxes come in the order their first node was made (dicts keep
    insertion order), so the text reads in data-flow order.
    """
    tree = {}                                  # "encoder" -> {"encoder.0": {...}}
    for group in nodes_by_group:
        parts, level = group.split("."), tree
        for k in range(1, len(parts) + 1):
            level = level.setdefault(".".join(parts[:k]), {})
    lines = []

    def box(path: str, children: dict, indent: str) -> None:   # as deep as group_depth, no more
        lines.append(f"{indent}subgraph cluster_{len(lines)} {{")       # a unique number
        lines.append(f'{indent}  label={quote(path)}; style="rounded,dashed"; color="#888888";')
        lines.extend(f"{indent}  {node}" for node in nodes_by_group.get(path, []))
        for child, grandchildren in children.items():
            box(child, grandchildren, indent + "  ")
        lines.append(f"{indent}}}")

    for path, children in tree.items():
        box(path, children, "  ")
    return lines


# ----------------------------------------------------------------- drawing a file
def draw(tensor: Tensor, seen: Recording, path: str, model=None, group_depth: int = 0,
         names: dict | None = None, log=print) -> str:
    """Write a picture of the graph to `path` (.svg, .png, .pdf or .dot); returns what was written.

    An image is rendered by the Graphviz `dot` program. Without it, the DOT
    text goes to the same name ending in .dot, and `log` says how to render
    it. (The `graphviz` Python package runs this same program, so it would
    not help where the program is missing.)
    """
    stem, extension = os.path.splitext(path)
    fmt = extension.lstrip(".").lower()
    if fmt not in FORMATS + ("dot",):
        raise ValueError(f"draw: path {path!r} must end in .svg, .png, .pdf or .dot")
    text = to_dot(tensor, seen, model=model, group_depth=group_depth, names=names)
    program = shutil.which("dot")
    if fmt != "dot" and program is not None:
        done = subprocess.run([program, f"-T{fmt}"], input=text.encode(), capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"draw: dot failed on {path!r}: {done.stderr.decode().strip()}")
        write_atomically(path, done.stdout)                  # the picture dot wrote to stdout
        return path
    dot_path = stem + ".dot"
    write_atomically(dot_path, text.encode("utf-8"))
    if fmt != "dot":
        log(f"Graphviz `dot` not found: wrote {dot_path}; render it with "
            f"`dot -T{fmt} {dot_path} -o {path}` (install: apt install graphviz, brew install graphviz)")
    return dot_path
