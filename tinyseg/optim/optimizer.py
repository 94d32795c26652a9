"""The Optimizer base class: a list of parameters, their state, and checkpoints of it.

An optimizer turns gradients into updates. One training step is

    optimizer.zero_grad()        # forget the previous step's gradients
    loss = F.cross_entropy(model(x), y)
    loss.backward()              # fill every parameter's .grad
    optimizer.step()             # p.data -= (something computed from p.grad)

Subclasses (SGD, Adam) write only `step()`. This class keeps the
parameters in a fixed order and, for each one, a small dict of state
(momentum buffers, moment estimates, step counts) that is created on the
first step that parameter has a gradient.

Rules every step() follows:

- p.grad is never modified (it may be shared, or inspected afterwards):
  weight decay and momentum are computed into new arrays;
- p.data is updated in place with the array module of p (NumPy or CuPy), so
  a model moved to the GPU is optimised on the GPU;
- a parameter whose .grad is None is skipped (it took no part in the loss).

Checkpoint format (`state_dict()`), flat so it fits in an .npz file without pickle:

    "lr", "weight_decay", ...          hyperparameters, 0-d arrays ("betas": shape (2,))
    "state.{i}.{name}"                 state `name` of the i-th parameter, e.g.
                                       "state.0.exp_avg" -> array shaped like parameter 0
                                       "state.0.step"    -> 0-d int64 array

i counts parameters in the order they were given (model.parameters()
order). Parameters that have not been stepped yet have no entries.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tinyseg import backend
from tinyseg.tensor import Tensor


class Optimizer:
    """Base class: holds `params` (a list) and `state` (one dict per parameter)."""

    hyperparameter_names: tuple = ()   # attributes saved in state_dict, e.g. ("lr", "momentum")
    state_names: tuple = ()            # per-parameter state, e.g. ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list "
                             "(did the model define any Parameters?)")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameter {i} must be a Tensor with "
                                f"requires_grad=True, got {p!r}")
        self.state = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (backward() then starts afresh)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    # ----------------------------------------------------------- checkpoints
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Hyperparameters and per-parameter state as a flat dict of NumPy arrays."""
        flat = OrderedDict()
        for name in self.hyperparameter_names:
            flat[name] = np.array(getattr(self, name), dtype=np.float64)
        for i, state in enumerate(self.state):
            for name, value in state.items():
                if backend.is_array(value):
                    flat[f"state.{i}.{name}"] = np.array(backend.to_numpy(value))
                else:
                    flat[f"state.{i}.{name}"] = np.array(value, dtype=np.int64)
        return flat

    def load_state_dict(self, state_dict) -> None:
        """Restore what state_dict() saved; on any mismatch raise one ValueError, load nothing."""
        problems = []
        hyper = {}
        for name in self.hyperparameter_names:
            if name not in state_dict:
                problems.append(f"missing key {name!r}")
            else:
                value = np.asarray(state_dict[name], dtype=np.float64)
                hyper[name] = value.item() if value.ndim == 0 else tuple(value.tolist())
        states = [{} for _ in self.params]
        for key, value in state_dict.items():
            if key in self.hyperparameter_names:
                continue
            parts = key.split(".")
            if (len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit()
                    or int(parts[1]) >= len(self.params) or parts[2] not in self.state_names):
                problems.append(f"unexpected key {key!r}")
                continue
            i, name = int(parts[1]), parts[2]
            value = np.asarray(backend.to_numpy(value))
            expected = () if name == "step" else self.params[i].shape
            if value.shape != expected:
                problems.append(f"{key!r} has shape {value.shape}, expected {expected}")
                continue
            states[i][name] = value
        for i, state in enumerate(states):
            if state and set(state) != set(self.state_names):
                problems.append(f"parameter {i} has state {sorted(state)}, expected all of "
                                f"{sorted(self.state_names)}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems)
                             + "; nothing was loaded")

        for name, value in hyper.items():
            setattr(self, name, value)
        for i, (p, state) in enumerate(zip(self.params, states)):
            self.state[i] = {
                name: int(value) if name == "step"
                else backend.to_device(value.astype(p.dtype), p.device)
                for name, value in state.items()
            }
