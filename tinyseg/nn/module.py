"""Module, Parameter and Sequential: how layers hold their weights.

A Module is a piece of a network (a convolution, a U-Net) that owns
Parameters (tensors that training changes) and buffers (tensors it keeps
but does not train, like BatchNorm's running mean), and may hold other
Modules. Everything else is found by looking at its attributes:

    class TwoLayers(Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(3, 8, 3, padding=1)   # a child module: "conv"
            self.head = Conv2d(8, 2, 1)              # another: "head"

        def forward(self, x):
            return self.head(self.conv(x).relu())

    model = TwoLayers()
    [name for name, _ in model.named_parameters()]
    # ['conv.weight', 'conv.bias', 'head.weight', 'head.bias']

The rules, all in `named_children` and `named_modules` below:

- an attribute holding a Parameter is one of this module's parameters;
- a name passed to `register_buffer` is a buffer;
- an attribute holding a Module is a child, named by the attribute;
- an attribute holding a list of Modules gives children "name.0", "name.1", ...

Names join with dots, as in PyTorch, so a state_dict saved here has the same
keys a PyTorch user expects: "encoder.0.0.weight", "bn.running_mean".
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tinyseg import backend, recording
from tinyseg.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: requires_grad is True unless you say otherwise.

    Operations on a Parameter give plain Tensors; only the leaf is a Parameter.
    Optimizers update `parameter.data` in place.
    """

    def __init__(self, data, requires_grad: bool = True, dtype=None, device=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def join(prefix: str, name: str) -> str:
    """'encoder.0' + 'weight' -> 'encoder.0.weight' (no leading dot at the top)."""
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of every layer and model. Subclasses call super().__init__() first.

    training: True after train() (the default), False after eval(). Only layers
    that behave differently at test time (BatchNorm2d) look at it.
    """

    def __init__(self):
        self.training = True
        self._buffer_names = []  # attributes that are buffers, in registration order

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if not recording.is_recording():
            return self.forward(*args, **kwargs)
        with recording.module_running(self):  # the operations inside are reported as this module's
            output = self.forward(*args, **kwargs)
        recording.report_module_output(self, output)   # inspect watches each module's output
        return output

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Keep `tensor` as attribute `name`: saved in state_dict, moved by to(), not trained."""
        if not isinstance(tensor, Tensor) or isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor (not a Parameter), "
                            f"got {type(tensor).__name__}")
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, tensor)

    # ----------------------------------------------------------- walking the tree
    def named_children(self):
        """(name, module) for each direct child, in the order the attributes were set."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, module in enumerate(value):
                    yield f"{name}.{i}", module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = ""):
        """(name, module) for this module (name "") and every module below it, parents first.

        A module reachable twice (shared between two places) is listed once.
        """
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(join(name, child_name), child) for child_name, child in module.named_children()]
            stack.extend(reversed(children))  # so that the first child is visited first

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self):
        """("conv.weight", Parameter) for every parameter of this module and below."""
        for module_name, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    yield join(module_name, name), value

    def parameters(self):
        """Every Parameter, in a fixed order (the order optimizers and state_dict use)."""
        for _, parameter in self.named_parameters():
            yield parameter

    def named_buffers(self):
        """("bn.running_mean", Tensor) for every buffer of this module and below."""
        for module_name, module in self.named_modules():
            for name in module._buffer_names:
                yield join(module_name, name), getattr(module, name)

    def buffers(self):
        for _, buffer in self.named_buffers():
            yield buffer

    def named_tensors(self):
        """Parameters then buffers of each module, module by module: the state_dict order."""
        for module_name, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    yield join(module_name, name), value
            for name in module._buffer_names:
                yield join(module_name, name), getattr(module, name)

    # ----------------------------------------------------------- training helpers
    def train(self, mode: bool = True) -> "Module":
        """Switch this module and all below it to training (or, with False, evaluation) mode."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: BatchNorm uses its running statistics. Same as train(False)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None, as PyTorch does by default)."""
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to `device` ("cpu" or "cuda"), in place; returns self.

        The Parameter objects stay the same (an optimizer holding them still
        works); only their `.data` (and `.grad`) arrays are replaced.
        """
        backend.check_device(device)
        for _, tensor in self.named_tensors():
            tensor.data = backend.to_device(tensor.data, device)
            if tensor.grad is not None:
                tensor.grad = backend.to_device(tensor.grad, device)
        return self

    # ----------------------------------------------------------- saving and loading
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """name -> NumPy copy of every parameter and buffer (host arrays, safe to np.savez)."""
        return OrderedDict((name, np.array(backend.to_numpy(tensor.data)))
                           for name, tensor in self.named_tensors())

    def load_state_dict(self, state_dict) -> None:
        """Copy arrays from `state_dict` into the parameters and buffers, all or nothing.

        Every key must match, with the same shape. Otherwise one ValueError lists
        the missing, unexpected and wrongly shaped entries, and nothing is loaded.
        Values are cast to each tensor's dtype and copied to its device.
        """
        own = OrderedDict(self.named_tensors())
        given = {name: value.data if isinstance(value, Tensor) else value
                 for name, value in state_dict.items()}
        missing = [name for name in own if name not in given]
        unexpected = [name for name in given if name not in own]
        wrong_shape = [f"{name}: expected {own[name].shape}, got {tuple(np.shape(given[name]))}"
                       for name in own if name in given and tuple(np.shape(given[name])) != own[name].shape]
        if missing or unexpected or wrong_shape:
            problems = []
            if missing:
                problems.append(f"missing keys {missing}")
            if unexpected:
                problems.append(f"unexpected keys {unexpected}")
            if wrong_shape:
                problems.append(f"wrong shapes [{'; '.join(wrong_shape)}]")
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + ", ".join(problems)
                             + "; nothing was loaded")
        # Convert everything first, assign after: an error while converting loads nothing.
        arrays = {name: np.array(backend.to_numpy(given[name]), dtype=tensor.dtype)
                  for name, tensor in own.items()}
        for name, tensor in own.items():
            tensor.data = backend.to_device(arrays[name], tensor.device)

    # ----------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The arguments shown in repr, e.g. "3, 8, kernel_size=(3, 3)"."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied one after the other: Sequential(a, b, c)(x) == c(b(a(x))).

    The modules are children "0", "1", "2", ... (as in PyTorch), so the
    parameters are named "0.weight", "2.bias" and so on.
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} must be a Module, got {type(module).__name__}")
            setattr(self, str(i), module)

    def __len__(self) -> int:
        return len(list(self.named_children()))

    def __getitem__(self, index: int) -> Module:
        modules = list(self.children())
        return modules[index]

    def __iter__(self):
        return iter(list(self.children()))

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x
