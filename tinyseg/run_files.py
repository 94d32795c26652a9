"""The files of a run folder: loading a checkpoint's model, the history, and the folder itself.

    OUT/last.npz      the latest epoch (resume from it)       written by train.py
    OUT/best.npz      the epoch of the best validation mIoU    written by train.py
    OUT/history.json  one row per epoch; history.csv the same as a table

Every file is replaced in one atomic step (files.write_atomically), so a
run killed at any instant leaves files that load. `prepare_out` refuses to
train into a folder that holds a run unless --resume or --overwrite asks
for it, and removes the temporary files a killed write left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os

from tinyseg.checkpoint import CheckpointError, load_checkpoint, split_prefix
from tinyseg.files import remove_temporaries, write_atomically
from tinyseg.models import build_model

RUN_FILES = ("last.npz", "best.npz", "history.json", "history.csv")
PICTURES = ("predictions.png", "history.png")
PICTURE_COUNT = 6            # validation images shown in predictions.png


def load_model(path: str, device: str = "cpu"):
    """(model, meta) from a checkpoint, in eval mode, or CheckpointError with a clear message."""
    arrays, meta = load_checkpoint(path)
    if "model_config" not in meta:
        raise CheckpointError(f"checkpoint {path!r} holds no model configuration")
    try:
        model = build_model(meta["model_config"])
        model.load_state_dict(split_prefix(arrays, "model."))
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path!r} does not fit its model: {error}") from None
    model.eval()     # for prediction: BatchNorm uses (and keeps) its running statistics
    return model.to(device), meta


def write_history(out: str, history: list) -> None:
    """history.json and history.csv, each replaced in one atomic step (see checkpoint.py)."""
    write_atomically(os.path.join(out, "history.json"), json.dumps(history, indent=1).encode("utf-8"))
    if history:
        text = io.StringIO(newline="")
        columns = list(dict.fromkeys(key for row in history for key in row))   # every row's, in order
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        write_atomically(os.path.join(out, "history.csv"), text.getvalue().encode("utf-8"))


def prepare_out(out: str, resume: bool, overwrite: bool, log) -> None:
    """Make the output folder ready: refuse to replace a run by accident, clear killed writes."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a file, not a folder")
    existing = [name for name in RUN_FILES[:2] if os.path.exists(os.path.join(out, name))]
    if existing and not resume and not overwrite:
        raise ValueError(f"--out {out!r} already holds a run ({', '.join(existing)}); continue it "
                         f"with --resume, replace it with --overwrite, or choose another --out")
    if resume and not os.path.isfile(os.path.join(out, "last.npz")):
        raise CheckpointError(f"--resume: {os.path.join(out, 'last.npz')!r} does not exist, so there "
                              f"is nothing to resume; train without --resume")
    os.makedirs(out, exist_ok=True)
    stale = remove_temporaries(out)
    if stale:
        log(f"note: removed {len(stale)} unfinished file(s) a killed run left in {out}")


def remove_run(out: str) -> None:
    """--overwrite: delete the earlier run's files, once this run's data has proved readable."""
    for name in RUN_FILES + PICTURES:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


def resumed_history(out: str, meta: dict, log) -> list:
    """The per-epoch rows up to the checkpoint's epoch: from the checkpoint, else history.json.

    A history.json cut short by a kill is only noted: the checkpoint's own copy wins.
    """
    path = os.path.join(out, "history.json")
    from_file = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                from_file = [row for row in json.load(f) if row["epoch"] <= meta["epoch"]]
        except (ValueError, TypeError, KeyError, OSError):
            log(f"note: {path} is unreadable (cut short?); rebuilt it from last.npz")
    if "history" in meta:
        return list(meta["history"])
    return from_file or []


def write_pictures(out: str, examples: list, history: list, class_names, log=print) -> None:
    """predictions.png (image | truth | prediction, from the last validation) and history.png.

    examples: [(image (C, h, w), truth (h, w), prediction (h, w))], of any
    sizes (evaluate(keep=...) makes them). Each picture is skipped with a
    note when the package that draws it is missing.
    """
    from tinyseg.visualize import plot_history, save_grid
    images, truths, preds = zip(*examples) if examples else ((), (), ())
    try:
        if images:
            save_grid(os.path.join(out, "predictions.png"), images, truths, preds, class_names)
    except ImportError as error:
        log(f"note: no predictions.png ({error})")
    plot_history(os.path.join(out, "history.png"), history)


def run_file_names(out: str) -> list:
    """The files of a run that exist in `out`, in the order RUN_FILES + PICTURES lists them."""
    return [name for name in RUN_FILES + PICTURES if os.path.isfile(os.path.join(out, name))]
