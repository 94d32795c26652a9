"""What the user-path tests check of the files a command leaves: each one loads, whole.

    problems = unreadable_files(folder)     # [] when every finished file loads

Used by the fuzz test and the interruption test: whatever instant a command
stopped at, every file under its final name must be complete. Files still
being written carry the temporary prefix (files.TEMPORARY_PREFIX) and are
not results.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from tinyseg.checkpoint import CheckpointError, load_checkpoint
from tinyseg.files import TEMPORARY_PREFIX


def load_any(path: str) -> None:
    """Read the whole file as its kind says; raises if it is cut short or corrupt."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        load_checkpoint(path)
    elif suffix == ".json":
        with open(path, encoding="utf-8") as f:
            json.load(f)
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        if len({len(row) for row in rows}) > 1:
            raise ValueError(f"{path}: rows of different lengths")
    elif suffix == ".npy":
        np.load(path, allow_pickle=False)
    elif suffix == ".png":
        from PIL import Image
        with Image.open(path) as picture:
            picture.load()
    elif suffix in (".dot", ".txt"):
        with open(path, encoding="utf-8") as f:
            f.read()


def unreadable_files(folder) -> list:
    """[(path, error)] of the finished files under `folder` that do not load."""
    problems = []
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(TEMPORARY_PREFIX):
                continue
            path = os.path.join(root, name)
            try:
                load_any(path)
            except (CheckpointError, ValueError, OSError, SyntaxError, EOFError) as error:
                problems.append((path, f"{type(error).__name__}: {error}"))
    return problems
