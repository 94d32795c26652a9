"""Ctrl-C or kill -9 at any instant of train or predict leaves only files that load.

Hypothesis draws the command (train or predict), the signal (SIGINT, what
Ctrl-C sends, or SIGKILL, which cannot be caught) and the instant; the real
command runs in a subprocess with its writes slowed down (a sleep in
os.fsync, which every write of files.write_atomically makes while its
temporary file is open), so that an instant often lands inside a write.
Then every file left under its final name must load whole, and after a
SIGINT the message must not suggest an option the command does not have
(predict has no --resume).

The instant counts from when the command's own work begins, after Python
has imported NumPy and tinyseg, and is at least 10 ms: a Ctrl-C inside
those imports, or in the microseconds before main() enters its `try`,
still shows Python's own KeyboardInterrupt traceback (no code of ours runs
yet to catch it).

tests/test_resume_kill.py checks the other half for train: a killed run
resumes and loses at most the epoch in progress.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.checkpoint import save_checkpoint
from tinyseg.models import UNet
from slow_writes import slow_writes_command
from user_files import unreadable_files

Image = pytest.importorskip("PIL.Image")
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

EXAMPLES = int(os.environ.get("TINYSEG_FUZZ_EXAMPLES", "6"))


def predict_inputs(folder, count: int = 12):
    """`count` photos, small and one large (its PNGs take a while to encode, so an instant can land
    inside the write), and a checkpoint of an untrained U-Net that labels them."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    inputs = []
    for i in range(count):
        path = folder / f"photo {i}.png"
        size = (1200, 1600) if i == 2 else (40 + 3 * i, 50)
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)
        inputs.append(str(path))
    model = UNet(3, 3, base_channels=4, depth=2)
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    save_checkpoint(str(folder / "model.npz"), arrays, {"model_config": model.config})
    return inputs, str(folder / "model.npz")


def command(kind: str, tmp_path) -> tuple:
    """(argv, output folder) of one run of `kind`."""
    out = tmp_path / "out"
    if kind == "train":
        return (["train", "--size", "16", "--train-count", "8", "--val-count", "2", "--base-channels",
                 "2", "--depth", "1", "--batch-size", "4", "--epochs", "6", "--out", str(out),
                 "--no-progress", "--overwrite"], out)
    inputs, checkpoint = predict_inputs(tmp_path / "inputs")
    return ["predict", "--checkpoint", checkpoint, *inputs, "--out", str(out)], out


@settings(max_examples=EXAMPLES, deadline=None)
@given(kind=st.sampled_from(["train", "predict"]), kill=st.booleans(),
       instant=st.floats(0.01, 4.0))
def test_an_interrupted_command_leaves_only_complete_files(tmp_path_factory, kind, kill, instant):
    tmp_path = tmp_path_factory.mktemp(kind)
    argv, out = command(kind, tmp_path)
    process = subprocess.Popen(slow_writes_command(0.03, argv), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "MPLBACKEND": "Agg"})
    assert process.stdout.readline() == b"started\n"
    time.sleep(instant)
    process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
    _, err = process.communicate(timeout=120)
    err = err.decode(errors="replace")
    assert unreadable_files(out) == []
    assert "Traceback" not in err, err
    if kind == "predict":
        assert "--resume" not in err
    if not kill and process.returncode == 130:                 # caught in time: said so in one line
        assert err.strip().startswith("interrupted"), err

