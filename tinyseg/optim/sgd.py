"""Stochastic gradient descent, with optional momentum and weight decay (PyTorch's rule).

For each parameter p with gradient g, one step does

    g = g + weight_decay * p                 (L2 penalty weight_decay/2 * |p|^2)
    b = g                 on the first step  (momentum buffer)
    b = momentum * b + g  afterwards
    p = p - lr * b                           (with momentum = 0: p = p - lr * g)

Momentum makes b a running sum of past gradients: directions the gradients
agree on build up speed (up to 1 / (1 - momentum) times), directions where
they flip sign cancel out.
"""

from __future__ import annotations

from tinyseg.optim.optimizer import Optimizer


class SGD(Optimizer):
    """SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4).

    State saved per parameter: "momentum_buffer" (only when momentum != 0).
    """

    hyperparameter_names = ("lr", "momentum", "weight_decay")
    state_names = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"SGD: lr must be >= 0, got {lr!r}")
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(params)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)

    def step(self) -> None:
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data           # a new array; p.grad untouched
            if self.momentum != 0:
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.copy()      # our own copy, never p.grad itself
                else:
                    buffer = state["momentum_buffer"]
                    buffer *= self.momentum                  # in place: the buffer is ours
                    buffer += g
                g = state["momentum_buffer"]
            p.data -= self.lr * g                            # in place, on p's device
