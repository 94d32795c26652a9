"""Checkpoints: one .npz file of arrays plus a JSON header, safe by construction.

    save_checkpoint(path, arrays={"model.conv1.weight": ..., ...}, meta={...})
    arrays, meta = load_checkpoint(path)

Safe in three ways:
- Nothing in the file can run code: it is read with `allow_pickle=False`, so
  only plain arrays and the JSON header (stored as bytes) come back.
- A crash while saving (even `kill -9`) never leaves a broken file behind:
  the checkpoint is zipped in memory and written by files.write_atomically,
  the one writer of every tinyseg file (temporary name, fsync, rename).
- A corrupt, truncated or foreign file is refused with a clear message
  before anything is loaded from it: every array is read (and its zip CRC
  checked) up front, and the header must name the tinyseg format.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from tinyseg.files import write_atomically

FORMAT = "tinyseg-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable tinyseg checkpoint."""


def save_checkpoint(path: str, arrays: dict, meta: dict) -> None:
    """Write `arrays` (name -> NumPy array) and `meta` (JSON-able dict) to `path` atomically."""
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta})
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    payload["__meta__"] = np.frombuffer(header.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    write_atomically(path, buffer.getvalue())


def load_checkpoint(path: str) -> tuple:
    """Read a checkpoint -> (arrays dict, meta dict), or raise CheckpointError."""
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({error.strerror})") from None
    if not zipfile.is_zipfile(io.BytesIO(data)):           # a .npy, an image, a cut-short file...
        raise CheckpointError(f"checkpoint {path!r} is not a tinyseg checkpoint (the .npz file that "
                              f"'tinyseg train' writes, e.g. runs/unet/best.npz)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) everything
        meta = json.loads(bytes(arrays.pop("__meta__")).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a tinyseg checkpoint "
                              f"({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path!r} is not a tinyseg checkpoint (no '{FORMAT}' header)")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta.get('version')}; "
                              f"this tinyseg reads version {VERSION}")
    return arrays, meta


def split_prefix(arrays: dict, prefix: str) -> dict:
    """The entries whose names start with `prefix`, with the prefix removed."""
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
