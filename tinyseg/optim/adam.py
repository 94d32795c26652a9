"""Adam: per-parameter step sizes from running moments of the gradient (PyTorch's rule).

For each parameter p with gradient g, at step t = 1, 2, ...:

    g = g + weight_decay * p                    (L2 penalty, added to the gradient)
    m = beta1 * m + (1 - beta1) * g             first moment: a running mean of g
    v = beta2 * v + (1 - beta2) * g^2           second moment: a running mean of g^2
    m_hat = m / (1 - beta1^t)                   m and v start at 0, so early on they are
    v_hat = v / (1 - beta2^t)                   too small; dividing corrects that bias
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

Each coordinate moves by about lr * (mean gradient / typical gradient size),
so parameters whose gradients are tiny or huge all move at a similar pace,
which is why Adam needs less learning-rate tuning than SGD.
"""

from __future__ import annotations

import math

from tinyseg.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0).

    State saved per parameter: "step" (int), "exp_avg" (m), "exp_avg_sq" (v).
    """

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")
    state_names = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"Adam: lr must be >= 0, got {lr!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas!r}")
        if eps < 0:
            raise ValueError(f"Adam: eps must be >= 0, got {eps!r}")
        if weight_decay < 0:
            raise ValueError(f"Adam: weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(params)
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            xp = p.xp
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data           # a new array; p.grad untouched
            if not state:                                    # first step for this parameter
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(p.data)     # m
                state["exp_avg_sq"] = xp.zeros_like(p.data)  # v
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= beta1                                       # m = beta1 m + (1 - beta1) g
            m += (1 - beta1) * g
            v *= beta2                                       # v = beta2 v + (1 - beta2) g^2
            v += (1 - beta2) * (g * g)
            bias_correction1 = 1 - beta1 ** t
            bias_correction2 = 1 - beta2 ** t
            denominator = xp.sqrt(v) / math.sqrt(bias_correction2) + self.eps   # sqrt(v_hat) + eps
            p.data -= (self.lr / bias_correction1) * m / denominator            # lr * m_hat / ...
