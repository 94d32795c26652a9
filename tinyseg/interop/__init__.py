"""Take it out: a tinyseg model as a PyTorch module, or as an ONNX file, with the same logits.

    from tinyseg.interop import to_torch, from_torch, to_onnx

    module = to_torch(model)        # torch.nn.Module, the same layers, names and weights
    model = from_torch(module)      # and back (a twin trained in PyTorch, say)
    to_onnx(model, "unet.onnx", normalization=meta["normalization"])

    python -m tinyseg export --checkpoint runs/unet/best.npz --format torch --out model.pt
    python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx

    torch_twins.py    the PyTorch twins of the three models (needs only torch) and
                      build_torch_model(config), the module a .pt file loads into
    torch_weights.py  to_torch, from_torch: one loop over the state dict, name by name;
                      save_torch_file, the file `export --format torch` writes
    onnx_nodes.py     each tinyseg operation as ONNX nodes (Conv, BatchNormalization, ...)
    onnx_export.py    to_onnx: record one forward pass, write its operations, check the file
    export.py         export_checkpoint: the file `tinyseg export` writes (commands/export.py)

PyTorch and onnx are optional (pip install 'tinyseg[torch]', 'tinyseg[onnx]'):
they are imported only when a function here needs them, so `import tinyseg`
never imports either, and a missing one is an ImportError naming the install.
"""

from tinyseg.interop.onnx_export import DEFAULT_OPSET, to_onnx
from tinyseg.interop.torch_weights import copy_weights, from_torch, save_torch_file, to_torch

__all__ = ["to_torch", "from_torch", "copy_weights", "save_torch_file", "to_onnx", "DEFAULT_OPSET"]
