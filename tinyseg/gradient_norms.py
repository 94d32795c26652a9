"""Gradient flow while training: each layer's gradient norm, averaged over an epoch's steps.

After loss.backward() every parameter p holds g = d loss / d p. How large
g is, layer by layer, says whether the layers learn at all:

    ||g|| of a layer = sqrt(sum of g**2 over all of that layer's parameters)

In a deep network without normalisation the norms can shrink from the head
towards the input (vanishing gradients: the first layers barely move), or
grow until a step throws the weights away (exploding: try --lr 1). So
train records them, one column per layer in history.json and history.csv
("grad_norm/encoder.0", ...), and history.png draws one line per layer
over the epochs, on a log scale where a factor of 10 is one step up.

Layers. Parameters are grouped by the stage of the model that holds them
(model.stages()), so a legend stays short: for the U-Net encoder.0 (both
its convolutions and batch norms), encoder.1, ..., bottleneck, decoder.0,
..., head. A parameter in no stage is grouped by the module that owns it:
the U-Net's upsample.0, ... (its transpose convolutions); the FCN's
features.0, features.2, ... (its stages are the ReLUs, which own nothing).

Cost. One dot product g . g per parameter and step, added on the device;
the sums are read back once per epoch (one host sync), so a GPU run is not
slowed by a copy per step. Measured on the default U-Net: see the README.
"""

from __future__ import annotations

import math

from tinyseg import backend


def parameter_groups(model) -> dict[str, list]:
    """{layer: [its Parameters]}, layers in the order of model.named_parameters().

    A parameter's layer is the stage (model.stages()) that holds its module,
    or else that module's own path: "encoder.0.0.weight" -> "encoder.0",
    "upsample.1.weight" -> "upsample.1", "head.bias" -> "head".
    """
    stages = model.stages()
    groups: dict[str, list] = {}
    for name, parameter in model.named_parameters():
        module = name.rpartition(".")[0]                     # "encoder.0.0.weight" -> "encoder.0.0"
        layer = next((stage for stage in stages
                      if module == stage or module.startswith(stage + ".")), module)
        groups.setdefault(layer, []).append(parameter)
    return groups


class GradientNorms:
    """Adds up each layer's gradient norm after every backward; epoch_means() reads them once.

        norms = GradientNorms(model)
        for each step:  loss.backward(); norms.add(); optimizer.step()
        norms.epoch_means()      # {"encoder.0": 0.0412, ...}: mean over the steps; starts afresh
    """

    def __init__(self, model):
        self.groups = parameter_groups(model)
        self.total = None                 # (layers,) array on the device: sums of per-step norms
        self.steps = 0

    def add(self) -> None:
        """Add this step's norm of every layer (parameters without a gradient count as 0)."""
        first = next(iter(self.groups.values()))[0]
        xp = backend.get_array_module(first.data)
        norms = xp.stack([xp.sqrt(sum((xp.vdot(p.grad, p.grad) for p in parameters if p.grad is not None),
                                      xp.zeros((), dtype=first.dtype)))
                          for parameters in self.groups.values()])           # (layers,), on the device
        self.total = norms if self.total is None else self.total + norms
        self.steps += 1

    def epoch_means(self) -> dict[str, float | None]:
        """{layer: mean norm over the steps since the last call} (None without steps); resets."""
        if self.steps == 0:
            return {layer: None for layer in self.groups}
        means = backend.to_numpy(self.total) / self.steps                   # the one host read
        self.total, self.steps = None, 0
        return {layer: significant(float(mean)) for layer, mean in zip(self.groups, means)}


def significant(value: float, digits: int = 4):
    """value to `digits` significant digits (a vanishing 3.2e-9 keeps its digits); None if not finite."""
    return float(f"{value:.{digits}g}") if math.isfinite(value) else None
