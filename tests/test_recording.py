"""recording.Recording: what a forward pass reports while a recording is on, and nothing when off."""

import numpy as np
import pytest

import tinyseg.functional as F
from tinyseg import cat, nn, no_grad, recording
from tinyseg.models import FCN, UNet
from tinyseg.recording import Recording
from tinyseg.tensor import Tensor


def test_operations_and_module_outputs_are_recorded_in_order():
    model = FCN(in_channels=1, num_classes=2, width=4, depth=2).eval()
    x = Tensor(np.ones((1, 1, 5, 6), dtype=np.float32))
    with Recording() as seen:
        logits = model(x)
    ops = [operation.op for operation in seen.operations]
    assert ops == ["conv2d", "relu", "conv2d", "relu", "conv2d"]
    assert seen.operations[-1].result is logits
    assert seen.operations[0].inputs[0] is x
    assert seen.operations[0].attributes["padding"] == (1, 1)
    outputs = seen.outputs_of(model)
    assert outputs[""] is logits                                  # the model itself, last
    assert outputs["features"].shape == (1, 4, 5, 6)
    assert outputs["head"] is logits


def test_recorded_under_no_grad_and_in_nested_recordings():
    model = UNet(in_channels=1, num_classes=2, base_channels=2, depth=1)
    x = Tensor(np.ones((1, 1, 4, 4), dtype=np.float32))
    with Recording() as outer, no_grad():
        with Recording() as inner:
            model(x)
        F.relu(x)
    assert len(outer.operations) == len(inner.operations) + 1
    assert outer.operations[-1].op == "relu"


def test_nothing_is_recorded_when_off():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    (x * x).sum()
    assert not recording.is_recording()
    assert recording._recordings == []


def test_each_operation_names_the_innermost_module_running():
    conv = nn.Conv2d(1, 1, 3)
    block = nn.Sequential(conv, nn.ReLU())
    with Recording() as seen:
        y = block(Tensor(np.zeros((1, 1, 5, 5), dtype=np.float32)))
        assert recording._running_modules == []                    # popped after forward
        with pytest.raises(ValueError):
            conv(Tensor(np.zeros((1, 2, 5, 5), dtype=np.float32)))   # wrong channels
        assert recording._running_modules == []                    # popped after an error too
        cat([y, y], axis=1)                                        # made outside any module
    assert [(o.op, o.module) for o in seen.operations] == [("conv2d", conv), ("relu", block[1]),
                                                           ("cat", None)]


class Probe(nn.Module):
    """Notes the modules running while its forward() runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(list(recording._running_modules))
        return x


def test_modules_are_tracked_only_while_a_recording_is_on():
    probe = Probe()
    probe(Tensor(np.ones(2)))                      # no recording: Module.__call__ just runs forward
    with Recording():
        probe(Tensor(np.ones(2)))
    assert probe.seen == [[], [probe]]
