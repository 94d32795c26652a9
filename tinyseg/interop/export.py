"""A checkpoint as a PyTorch file or an ONNX file (the work of `tinyseg export`, commands/export.py).

    python -m tinyseg export --checkpoint runs/unet/best.npz --format torch --out model.pt
    python -m tinyseg export --checkpoint runs/unet/best.npz --format onnx --out model.onnx

--format torch writes {"config", "state_dict", "normalization", "class_names"}
for torch.load (torch_weights.save_torch_file); --format onnx writes the
recorded forward pass with the checkpoint's normalization as its first two
nodes, so it takes images in [0, 1] (onnx_export.to_onnx). Without --out the
file goes beside the checkpoint: runs/unet/best.npz -> runs/unet/best.pt.
"""

from __future__ import annotations

import os

from tinyseg.interop.onnx_export import DEFAULT_OPSET

SUFFIXES = {"torch": ".pt", "onnx": ".onnx"}


def export_checkpoint(checkpoint: str, file_format: str, out: str | None = None,
                      opset: int = DEFAULT_OPSET) -> str:
    """Write the checkpoint's model as `file_format` ("torch" or "onnx"); returns a line saying what."""
    from tinyseg.run_files import load_model
    if file_format not in SUFFIXES:
        raise ValueError(f"--format must be one of {sorted(SUFFIXES)}, got {file_format!r}")
    suffix = SUFFIXES[file_format]
    if out is None:
        out = os.path.splitext(checkpoint)[0] + suffix
    if os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a folder; give a file name, e.g. "
                         f"{os.path.join(out, 'model' + suffix)}")
    model, meta = load_model(checkpoint)                    # in eval mode, on the CPU
    normalization, class_names = meta.get("normalization"), meta.get("class_names")
    name = model.config["name"]
    if file_format == "torch":
        from tinyseg.interop.torch_weights import save_torch_file
        save_torch_file(model, out, normalization, class_names)
        return f"{checkpoint} -> {out}: PyTorch state dict of the {name} model, config, normalization"
    from tinyseg.interop.onnx_export import to_onnx
    proto = to_onnx(model, out, opset=opset, normalization=normalization, class_names=class_names)
    where = "normalised in the graph" if normalization is not None else "no normalization"
    return (f"{checkpoint} -> {out}: ONNX opset {opset}, {len(proto.graph.node)} nodes, input "
            f"'image' (batch, {model.in_channels}, height, width) in [0, 1] ({where}), output 'logits'")

