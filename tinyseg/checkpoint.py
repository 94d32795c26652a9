"""Checkpoints: one .npz file of arrays plus a JSON header, safe by construction.

    save_checkpoint(path, arrays={"model.conv1.weight": ..., ...}, meta={...})
    arrays, meta = load_checkpoint(path)

Safe in three ways:
- Nothing in the file can run code: it is read with `allow_pickle=False`, so
  only plain arrays and the JSON header (stored as bytes) come back.
- A crash while saving (even `kill -9`) never leaves a broken file behind:
  `write_atomically` writes to a temporary file next to the target, flushes
  it to disk, then renames it over the target in one step (`os.replace` is
  atomic on POSIX and Windows). Until that step the old file is whole; after
  it the new one is. A kill in between leaves only a `.tmp-*` file, which
  `remove_temporaries` clears before the next run. The training history
  files are written the same way.
- A corrupt, truncated or foreign file is refused with a clear message
  before anything is loaded from it: every array is read (and its zip CRC
  checked) up front, and the header must name the tinyseg format.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "tinyseg-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable tinyseg checkpoint."""


TEMPORARY_PREFIX = ".tmp-"     # files being written; never a finished checkpoint


def write_atomically(path: str, data: bytes) -> None:
    """Replace the file at `path` by `data` in one step: readers see the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=os.path.basename(path),
                                         dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)  # the one atomic step
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def remove_temporaries(folder: str) -> list:
    """Delete the `.tmp-*` files a killed writer left in `folder`; returns their names."""
    if not os.path.isdir(folder):
        return []
    stale = sorted(name for name in os.listdir(folder) if name.startswith(TEMPORARY_PREFIX))
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale


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
