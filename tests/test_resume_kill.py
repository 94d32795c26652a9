"""kill -9 at any instant loses at most the epoch in progress: the files left always load and resume.

A real `python -m tinyseg train` runs in a subprocess and is SIGKILLed at
random moments, again and again. Its writes are slowed down (a sleep in
os.fsync, which every atomic write calls while its temporary file is open)
so that many kills land in the middle of writing a checkpoint or a history
file. After every kill whatever is in the folder must load; at the end one
more `--resume` must finish the run with every epoch in its history.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinyseg.checkpoint import load_checkpoint

EPOCHS = 30
SLOW_WRITES = """
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(0.06)
    real_fsync(fd)
os.fsync = slow_fsync
from tinyseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def command(out, resume: bool) -> list:
    return [sys.executable, "-c", SLOW_WRITES, "train", "--size", "16", "--train-count", "8",
            "--val-count", "2", "--base-channels", "2", "--depth", "1", "--batch-size", "4",
            "--epochs", str(EPOCHS), "--out", str(out), "--no-progress",
            "--resume" if resume else "--overwrite"]


def start(out):
    """Resume if a checkpoint survived, else start afresh (--overwrite), as a user would."""
    resume = os.path.exists(os.path.join(out, "last.npz"))
    return subprocess.Popen(command(out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "MPLBACKEND": "Agg"})


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_9_at_random_moments_never_leaves_a_broken_run(tmp_path):
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    epochs_seen, killed_mid_write = [], 0
    for moment in [0.2, *rng.uniform(1.2, 2.4, size=6)]:     # the first: before any write
        process = start(out)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_mid_write += any(name.startswith(".tmp-") for name in os.listdir(out)) \
            if out.exists() else 0
        if (out / "last.npz").exists():
            _, meta = load_checkpoint(str(out / "last.npz"))   # never a broken file
            epochs_seen.append(meta["epoch"])
            assert [row["epoch"] for row in meta["history"]] == list(range(1, meta["epoch"] + 1))
        if (out / "best.npz").exists():
            load_checkpoint(str(out / "best.npz"))
    process = start(out)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    _, meta = load_checkpoint(str(out / "last.npz"))
    assert meta["epoch"] == EPOCHS
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
    assert epochs_seen, "no kill came after the first checkpoint: the moments are too early"
    assert killed_mid_write, "no kill landed in the middle of a write"
    print(f"\n{len(epochs_seen)} kills after a checkpoint, {killed_mid_write} in the middle of a "
          f"write; epochs reached: {epochs_seen}")
