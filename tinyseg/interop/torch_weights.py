"""A tinyseg model as a PyTorch module and back: the same names, the same numbers.

    module = to_torch(model)          # torch.nn.Module: the twin, holding model's weights
    module(torch.from_numpy(x))       # == model(Tensor(x)), to float rounding
    model = from_torch(module)        # a tinyseg model holding the module's weights

Nothing is translated: tinyseg names its parameters and buffers as PyTorch
does ("encoder.0.0.weight", "encoder.0.1.running_mean"), with PyTorch's
shapes (a conv weight is (out, in, kh, kw), a transpose conv's (in, out, kh, kw)),
so copying is one loop over the state dict, name by name. The one key
tinyseg does not keep is BatchNorm2d's num_batches_tracked (PyTorch uses it
only with momentum=None); it is left alone one way and skipped the other.

The twin is built from the model's `config` (torch_twins.build_torch_model),
so it is the same architecture by construction, and copy_weights checks it:
a name or a shape that does not line up is an error naming it.

save_torch_file writes what `tinyseg export --format torch` writes: a file
torch.load reads (weights_only, no pickled classes) holding the config, the
state dict, the input normalization and the class names.
"""

from __future__ import annotations

import io

import numpy as np

from tinyseg.files import write_atomically
from tinyseg.models import build_model


def copy_weights(tinyseg_model, torch_module) -> None:
    """Copy every tinyseg parameter and buffer into the module's tensor of the same name.

    Raises ValueError naming the keys that do not line up: the module is not
    the same architecture. (num_batches_tracked, PyTorch's only extra, is left alone.)
    """
    import torch
    ours = tinyseg_model.state_dict()                            # name -> NumPy array
    theirs = {name: tensor for name, tensor in torch_module.state_dict().items()
              if not name.endswith("num_batches_tracked")}
    missing = sorted(set(theirs) - set(ours))
    unexpected = sorted(set(ours) - set(theirs))
    wrong = [f"{name}: {ours[name].shape} vs {tuple(theirs[name].shape)}" for name in ours
             if name in theirs and tuple(ours[name].shape) != tuple(theirs[name].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"copy_weights: the PyTorch module does not match the tinyseg model; "
                         f"only in PyTorch {missing}, only in tinyseg {unexpected}, "
                         f"different shapes {wrong}")
    with torch.no_grad():
        for name, tensor in theirs.items():                      # copy_ casts to the module's dtype
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(ours[name])))


def to_torch(model):
    """The PyTorch twin of a tinyseg model, holding its weights, in the same train/eval mode.

    model: a SlidingWindow, FCN or UNet (anything whose `config` build_model
    reads). The module is on the CPU in the model's dtype; move it with .to().
    ImportError naming `pip install 'tinyseg[torch]'` without PyTorch.
    """
    from tinyseg.interop.torch_twins import build_torch_model
    module = build_torch_model(model.config)
    copy_weights(model, module)
    if hasattr(model, "chunk_size"):                             # the sliding window's chunks
        module.chunk_size = model.chunk_size
    return module.train(model.training)


def from_torch(module, config: dict | None = None):
    """A tinyseg model holding the weights of a PyTorch twin, in the module's train/eval mode.

    config: the tinyseg model config (model.config) the module was built
    from; by default the `.config` that to_torch and build_torch_model leave
    on the module. The tensors are copied to the host and cast to the
    config's dtype.
    """
    if config is None:
        config = getattr(module, "config", None)
    if config is None:
        raise ValueError("from_torch: the module carries no tinyseg config (it was not built by "
                         "to_torch or build_torch_model); pass config=, e.g. model.config")
    model = build_model(config)
    state = {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()
             if not name.endswith("num_batches_tracked")}
    model.load_state_dict(state)                                 # ValueError naming what differs
    return model.train(module.training)


def save_torch_file(model, path: str, normalization: dict | None = None,
                    class_names: list | None = None) -> None:
    """Write {"config", "state_dict", "normalization", "class_names"} for torch.load, atomically.

    state_dict is the twin's (PyTorch names, PyTorch tensors, with
    num_batches_tracked), so build_torch_model(saved["config"]).load_state_dict(
    saved["state_dict"]) takes it as it is. normalization: {"mean": [...],
    "std": [...]} per input channel, applied as (image - mean) / std to
    images in [0, 1] before the model, or None.
    """
    module = to_torch(model)                                     # a clear ImportError without PyTorch
    import torch
    buffer = io.BytesIO()
    torch.save({"config": dict(model.config), "state_dict": module.state_dict(),
                "normalization": normalization, "class_names": class_names}, buffer)
    write_atomically(path, buffer.getvalue())
