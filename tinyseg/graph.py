"""A picture of the autograd graph: Graphviz DOT text, and a file drawn from it.

Every Tensor made by an operation points to its graph entry, a Node
(autograd.py) that remembers the operation's name (`.op`), its parents and
its result's shape; autograd.py walks exactly this graph backwards. Drawing
it shows what backward will visit:

    x = Tensor(np.ones((1, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    loss = (x @ w).relu().sum()
    print(to_dot(loss, names={"x": x, "w": w}))

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
parameters it owns. Module.__call__ records which module was running when
each tensor was made (`tensor.module`), and the model's named_modules()
gives that module its path.

`draw(tensor, "graph.svg")` renders the text with the Graphviz `dot` program
when it is installed (apt install graphviz, brew install graphviz) and
otherwise writes "graph.dot" and says how to render it. The DOT text itself
needs nothing but Python.

`python -m tinyseg graph --model unet --size 64 64 --out unet.svg` draws a
model's forward pass and its cross-entropy loss.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import numpy as np

from tinyseg import autograd
from tinyseg.files import write_atomically
from tinyseg.models.options import add_model_arguments, model_config, model_settings
from tinyseg.tensor import Tensor

FORMATS = ("svg", "png", "pdf")       # what `dot` is asked to write; ".dot" is the text itself
PARAMETER_STYLE = 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"'
INPUT_STYLE = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
VALUE_STYLE = "shape=box, style=rounded"
OPERATOR_STYLE = 'shape=ellipse, style=filled, fillcolor="#fde9c9"'


# ----------------------------------------------------------------- the graph as lists
def graph_order(root: Tensor) -> list:
    """Every entry of the graph ending at `root` (a Node per operation, the leaf Tensors),
    each after the entries it was made from.

    The operations come in the order backward walks (reversed):
    autograd.topological_order. Each leaf (a parameter, an input, a constant)
    is placed just before the first operation that reads it, so a layer's
    weights sit next to the layer. This also brings in the leaves that do not
    require grad (an input image), which that order leaves out since no
    gradient goes to them.
    """
    order, placed, root = [], set(), autograd.graph_entry(root)
    for tensor in autograd.topological_order(root):
        if not tensor.parents and tensor is not root:
            continue                                   # a leaf: placed by its first reader
        for parent in tensor.parents:
            if not parent.parents and id(parent) not in placed:
                placed.add(id(parent))
                order.append(parent)
        order.append(tensor)
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


def to_dot(tensor: Tensor, model=None, group_depth: int = 0, names: dict | None = None) -> str:
    """Graphviz DOT text of the graph that produced `tensor`.

    model: the Module that made it, if any; its named_parameters() (and
    buffers) name the parameter boxes. group_depth > 0 (needs `model`) puts
    each operator, its result and the parameters a module owns into nested
    `subgraph cluster_...` boxes, one per module path cut to group_depth parts.
    names: more boxes to name, {"x": x, "w": w}, for tensors no module owns.

    Node ids: "v{i}" for the i-th tensor in data-flow order, "op{i}" for the
    operation that made tensor i. The graph reads top to bottom.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: tensor must be a Tensor, got {type(tensor).__name__}")
    if group_depth < 0:
        raise ValueError(f"to_dot: group_depth must be >= 0, got {group_depth}")
    if group_depth and model is None:
        raise ValueError("to_dot: group_depth needs the model, to know each module's path")
    modules, names_by_id = module_paths(model)
    names_by_id.update({id(autograd.graph_entry(t)): name for name, t in (names or {}).items()})
    order = graph_order(tensor)
    index = {id(t): i for i, t in enumerate(order)}

    nodes_by_group = {}           # group path -> DOT node lines ("" is the top level)
    edges = []
    for i, t in enumerate(order):
        name = names_by_id.get(id(t), "")
        if t.parents:             # made by an operation: an operator node, then its result
            group = group_of(modules.get(id(t.module), ""), group_depth)   # the module that made it
            nodes_by_group.setdefault(group, []).append(
                f"op{i} [label={quote(t.op)}, {OPERATOR_STYLE}]")
            edges += [f"v{index[id(parent)]} -> op{i}" for parent in t.parents]
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
def draw(tensor: Tensor, path: str, model=None, group_depth: int = 0, names: dict | None = None,
         log=print) -> str:
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
    text = to_dot(tensor, model=model, group_depth=group_depth, names=names)
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


# ----------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tinyseg graph`."""
    parser.add_argument("--model", choices=["naive", "fcn", "unet"], default="unet")
    parser.add_argument("--size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"),
                        help="image height and width")
    parser.add_argument("--out", default="graph.svg", help="picture to write (.svg, .png, .pdf, .dot)")
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=4, help="number of classes")
    add_model_arguments(parser)               # --base-channels, --depth, --width, ... as in train
    parser.add_argument("--group-by-module", action="store_true",
                        help="draw a box around what each module made (a U-Net level, a block)")
    parser.add_argument("--group-depth", type=int, default=2,
                        help="with --group-by-module: how many parts of a module's path make "
                             "one box (1: 'encoder', 2: 'encoder.0', ...)")


def build_model(args):
    """The model to draw, from the parsed options (the same table as `tinyseg train`'s)."""
    from tinyseg.models import build_model as build
    return build(model_config(args.model, model_settings(args), args.in_channels, args.classes))


def run(args) -> int:
    """Draw the forward pass and loss of one blank image through the chosen model."""
    from tinyseg import functional as F
    height, width = args.size
    if height < 1 or width < 1:
        raise ValueError(f"--size must be positive, got {height} {width}")
    if args.group_depth < 1:
        raise ValueError(f"--group-depth must be >= 1, got {args.group_depth}")
    model = build_model(args)
    if (model.smallest_normalized_map(height, width) or 2) < 2:
        raise ValueError(f"--size {height} {width} leaves one value per channel in the model's "
                         f"smallest map, too few for batch norm on one image: use a larger --size "
                         f"or --no-batch-norm")
    image = Tensor(np.zeros((1, args.in_channels, height, width), dtype=np.float32))
    target = np.zeros((1, height, width), dtype=np.int64)
    loss = F.cross_entropy(model(image), target)
    written = draw(loss, args.out, model=model,
                   group_depth=args.group_depth if args.group_by_module else 0)
    operations = sum(1 for t in graph_order(loss) if t.parents)
    print(f"{args.model}: {operations} operations on a {height} x {width} image -> {written}")
    return 0
