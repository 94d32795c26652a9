"""The graph picture: the DOT text, parsed back, must be the graph autograd recorded."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from tinyseg import Tensor, autograd, graph
from tinyseg import functional as F
from tinyseg.graph import draw, graph_order, to_dot
from tinyseg.models import FCN, UNet
from tinyseg.recording import Recording

NODE = re.compile(r'^\s*(v\d+|op\d+) \[label="((?:[^"\\]|\\.)*)"')
EDGE = re.compile(r"^\s*(\w+) -> (\w+)$")
CLUSTER = re.compile(r'^\s*label="([^"]*)"; style=')


def parse(dot: str) -> dict:
    """{"nodes": {id: label}, "edges": [(a, b)], "clusters": [(label, [node ids inside])]}."""
    nodes, edges, clusters, open_boxes = {}, [], [], []
    lines = dot.splitlines()
    assert lines[0] == "digraph tinyseg {" and lines[-1] == "}"
    for line in lines[1:-1]:
        if line.strip().startswith("subgraph cluster_"):
            open_boxes.append(None)
        elif CLUSTER.match(line):
            open_boxes[-1] = (CLUSTER.match(line).group(1), [])
            clusters.append(open_boxes[-1])
        elif line.strip() == "}":
            open_boxes.pop()
        elif NODE.match(line):
            node, label = NODE.match(line).groups()
            assert node not in nodes, f"node {node} defined twice"
            nodes[node] = label.replace("\\n", "\n")
            for box in open_boxes:
                box[1].append(node)
        elif EDGE.match(line):
            edges.append(EDGE.match(line).groups())
    assert not open_boxes, "a cluster is not closed"
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def operations(root: Tensor) -> list:
    """The Nodes of the graph ending at root: one per operation backward visits."""
    return [node for node in autograd.topological_order(root) if isinstance(node, autograd.Node)]


def check_against_graph(root: Tensor, seen: Recording, dot: str) -> dict:
    parsed = parse(dot)
    nodes, edges = parsed["nodes"], parsed["edges"]
    recorded = operations(root)
    op_nodes = {n: label for n, label in nodes.items() if n.startswith("op")}
    assert len(op_nodes) == len(recorded)                            # one per operation
    assert sorted(op_nodes.values()) == sorted(node.op for node in recorded)
    assert sum(n.startswith("v") for n in nodes) == len(graph_order(root, seen))   # one per tensor
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} joins a missing node"
        assert a.startswith("v") != b.startswith("v"), "edges join a value and an operator"
        assert int(a.lstrip("vop")) <= int(b.lstrip("vop")), "edges run in data-flow order"
    assert len(edges) == sum(len(node.parents) + 1 for node in recorded)
    return parsed


def test_a_tiny_graph_by_hand():
    x = Tensor(np.ones((1, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    with Recording() as seen:
        loss = (x @ w).relu().sum()
    parsed = check_against_graph(loss, seen, to_dot(loss, seen))
    assert [label for n, label in parsed["nodes"].items() if n.startswith("op")] == ["matmul", "relu", "sum"]
    assert parsed["nodes"]["v0"] == "(1, 3) float32\nrequires grad"        # x, then w, then matmul
    assert parsed["nodes"]["v1"] == "(3, 2) float32\nrequires grad"
    assert ("v0", "op2") in parsed["edges"] and ("v1", "op2") in parsed["edges"]
    assert ("op2", "v2") in parsed["edges"] and ("v2", "op3") in parsed["edges"]


def test_a_tensor_used_twice_and_a_constant_are_one_node_each():
    x = Tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    constant = Tensor(np.ones((2, 2)))                               # no grad: drawn, not walked
    with Recording() as seen:
        y = x * x + constant
    parsed = check_against_graph(y, seen, to_dot(y, seen))
    assert parsed["edges"].count(("v0", "op1")) == 2                 # x feeds mul twice
    assert "requires grad" not in parsed["nodes"]["v2"]              # the constant
    assert "(2, 2) float64" in parsed["nodes"]["v2"]


def test_names_label_tensors_no_module_owns():
    x = Tensor(np.ones((1, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    with Recording() as seen:
        loss = (x @ w).sum()
    parsed = parse(to_dot(loss, seen, names={"x": x, "w": w}))
    assert parsed["nodes"]["v0"].startswith("x\n(1, 3)") and parsed["nodes"]["v1"].startswith("w\n(3, 2)")


def test_a_graph_without_operations_is_one_value():
    parsed = parse(to_dot(Tensor(np.zeros(3)), Recording()))
    assert list(parsed["nodes"]) == ["v0"] and parsed["edges"] == []


def unet_loss(**kwargs):
    """(model, loss, the Recording of the forward pass) of a small U-Net."""
    model = UNet(2, 3, base_channels=2, depth=2, **kwargs)
    with Recording() as seen:
        logits = model(Tensor(np.zeros((1, 2, 8, 8), dtype=np.float32)))
        loss = F.cross_entropy(logits, np.zeros((1, 8, 8), dtype=np.int64))
    return model, loss, seen


def test_unet_parameters_are_named_and_every_parameter_is_drawn():
    model, loss, seen = unet_loss(batch_norm=True)
    parsed = check_against_graph(loss, seen, to_dot(loss, seen, model=model))
    labels = "\n".join(parsed["nodes"].values())
    for name, parameter in model.named_parameters():
        assert f"{name}\n{parameter.shape} float32\nrequires grad" in labels


@pytest.mark.parametrize("depth, expected", [
    (1, {"encoder", "downsample", "bottleneck", "upsample", "decoder", "head"}),
    (2, {"encoder.0", "encoder.1", "decoder.0", "bottleneck.0", "head"}),
])
def test_grouping_by_module_boxes_what_each_module_made(depth, expected):
    model, loss, seen = unet_loss()
    parsed = check_against_graph(loss, seen, to_dot(loss, seen, model=model, group_depth=depth))
    boxes = {label: inside for label, inside in parsed["clusters"]}
    assert expected <= set(boxes)
    nodes = parsed["nodes"]
    # encoder.0 holds the first block's two convolutions and their weights, nothing of encoder.1
    first = [nodes[n] for n in boxes["encoder" if depth == 1 else "encoder.0"]]
    assert first.count("conv2d") == (4 if depth == 1 else 2)           # two blocks, or one
    assert any(label.startswith("encoder.0.0.weight") for label in first)
    if depth == 2:
        assert not any(label.startswith("encoder.1.") for label in first)
    # the U-Net itself joins skips and the loss is outside any module: both at the top level
    boxed = {n for inside in boxes.values() for n in inside}
    top = [nodes[n] for n in nodes if n not in boxed]
    assert top.count("cat") == 2 and "cross_entropy" in top


def test_nested_boxes_hold_their_children():
    model, loss, seen = unet_loss()
    parsed = parse(to_dot(loss, seen, model=model, group_depth=3))
    boxes = dict(parsed["clusters"])
    assert set(boxes["encoder.0.0"]) < set(boxes["encoder.0"]) < set(boxes["encoder"])


def test_an_operation_made_outside_the_recording_is_named():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="'mul' operation .* was not recorded"):
        to_dot((x * 2).sum(), Recording())
    with pytest.raises(TypeError, match="seen must be the Recording"):
        to_dot(x.sum(), None)


def test_draw_without_dot_writes_the_text_and_says_how_to_render(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    x = Tensor(np.ones(2), requires_grad=True)
    messages = []
    with Recording() as seen:
        loss = (x * 2).sum()
    written = draw(loss, seen, str(tmp_path / "pics" / "g.svg"), log=messages.append)
    assert written == str(tmp_path / "pics" / "g.dot")
    assert open(written).read() == to_dot(loss, seen)
    assert "dot -Tsvg" in messages[0] and "g.svg" in messages[0]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for dot")
def test_draw_hands_the_text_to_dot(tmp_path, monkeypatch):
    fake = tmp_path / "dot"                 # copies its input to its output, as a renderer would
    fake.write_text(f'#!/bin/sh\necho "$1" > "{tmp_path}/format"\ncat\n')
    fake.chmod(0o755)
    monkeypatch.setattr(graph.shutil, "which", lambda name: str(fake))
    x = Tensor(np.ones(2), requires_grad=True)
    out = tmp_path / "g.png"
    with Recording() as seen:
        total = x.sum()
    assert draw(total, seen, str(out)) == str(out)
    assert out.read_text() == to_dot(total, seen)
    assert (tmp_path / "format").read_text().strip() == "-Tpng"


def test_bad_arguments_are_named():
    x = Tensor(np.ones(2), requires_grad=True)
    with Recording() as seen:
        total = x.sum()
    with pytest.raises(ValueError, match="path"):
        draw(total, seen, "graph.jpg")
    with pytest.raises(ValueError, match="group_depth needs the model"):
        to_dot(total, seen, group_depth=1)
    with pytest.raises(TypeError, match="Tensor"):
        to_dot(np.ones(2), seen)


def test_graph_command_draws_a_grouped_unet(tmp_path, monkeypatch, capsys):
    from tinyseg.cli import main
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    out = tmp_path / "unet.svg"
    assert main(["graph", "--model", "unet", "--size", "16", "16", "--base-channels", "2",
                 "--depth", "2", "--no-batch-norm", "--out", str(out), "--group-by-module"]) == 0
    text = capsys.readouterr().out
    # without batch norm: 2 blocks of 4 (conv, relu, conv, relu) + 2 pools, bottleneck 4,
    # 2 x (up, cat, block of 4), head, crop back to the input's size (crop_like, even when it
    # crops nothing), loss: 8 + 2 + 4 + 12 + 1 + 1 + 1
    assert "wrote" in text and "dot -Tsvg" in text and "unet: 29 operations" in text
    parsed = parse((tmp_path / "unet.dot").read_text())
    assert "decoder.1" in dict(parsed["clusters"])


def test_graph_command_errors_are_one_line(tmp_path, capsys):
    from tinyseg.cli import main
    assert main(["graph", "--model", "fcn", "--out", str(tmp_path / "x.gif")]) == 1
    assert capsys.readouterr().err.startswith("tinyseg graph: error: draw: path")
    assert main(["graph", "--size", "0", "8", "--out", str(tmp_path / "x.dot")]) == 1
    assert capsys.readouterr().err == "tinyseg graph: error: --size must be positive, got 0 8\n"


def test_fcn_graph_has_one_conv_per_layer():
    model = FCN(1, 2, width=2, depth=3)
    with Recording() as seen:
        loss = F.cross_entropy(model(Tensor(np.zeros((1, 1, 4, 4), dtype=np.float32))),
                               np.zeros((1, 4, 4), dtype=np.int64))
    parsed = check_against_graph(loss, seen, to_dot(loss, seen, model=model))
    assert list(parsed["nodes"].values()).count("conv2d") == 4


def test_graph_command_takes_the_model_options_of_train(tmp_path, capsys):
    from tinyseg.cli import build_parser, main
    train = vars(build_parser().parse_args(["train"]))
    drawn = vars(build_parser().parse_args(["graph"]))
    assert {name: drawn[name] for name in ("base_channels", "depth", "width", "window", "batch_norm")} \
        == {name: train[name] for name in ("base_channels", "depth", "width", "window", "batch_norm")}
    assert main(["graph", "--model", "unet", "--size", "16", "16", "--base-channels", "2",
                 "--depth", "2", "--out", str(tmp_path / "unet.dot")]) == 0
    # train's default U-Net has batch norm: one more operation after each of its 10 convolutions
    # (29 + 10 = 39, the crop_like included)
    assert "unet: 39 operations" in capsys.readouterr().out
