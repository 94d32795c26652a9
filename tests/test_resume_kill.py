"""kill -9 at any instant loses at most the epoch in progress: the files left always load and resume.

A real `python -m tinyseg train` runs in a subprocess and is SIGKILLed again
and again: once while it starts, three times while a temporary file is open
(in the middle of writing a checkpoint or a history file, then a random
moment later), and at a random moment after an epoch was saved. Its writes
are slowed down (a sleep in os.fsync, which every atomic write calls while
its temporary file is open) so that the writes are wide enough to hit.
After every kill whatever is in the folder must load, and no saved epoch is
lost; at the end one more `--resume` must finish the run with every epoch
in its history and no temporary file left.
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from slow_writes import slow_writes_command
from tinyseg.checkpoint import load_checkpoint

EPOCHS = 16


def command(out, resume: bool) -> list:
    return slow_writes_command(0.05, ["train", "--size", "16", "--train-count", "8", "--val-count", "2",
                                      "--base-channels", "2", "--depth", "1", "--batch-size", "4",
                                      "--epochs", str(EPOCHS), "--out", str(out), "--no-progress",
                                      "--resume" if resume else "--overwrite"])


def start(out):
    """Resume if a checkpoint survived, else start afresh (--overwrite), as a user would."""
    resume = os.path.exists(os.path.join(out, "last.npz"))
    return subprocess.Popen(command(out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "MPLBACKEND": "Agg"})


def wait_for(condition, process, timeout: float = 120.0) -> bool:
    """Poll `condition` every 5 ms while the process runs; True once it holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        if condition():
            return True
        time.sleep(0.005)
    return False


def writing(out) -> bool:
    return out.is_dir() and any(name.startswith(".tmp-") for name in os.listdir(out))


def checkpoint_epoch(out) -> int:
    path = out / "last.npz"
    return load_checkpoint(str(path))[1]["epoch"] if path.exists() else 0


def check_what_survived(out) -> int:
    """Every file a killed run left loads; last.npz's history runs 1..epoch. Returns the epoch."""
    if (out / "best.npz").exists():
        load_checkpoint(str(out / "best.npz"))
    if not (out / "last.npz").exists():
        return 0
    _, meta = load_checkpoint(str(out / "last.npz"))
    assert [row["epoch"] for row in meta["history"]] == list(range(1, meta["epoch"] + 1))
    return meta["epoch"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_9_at_random_moments_never_leaves_a_broken_run(tmp_path):
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    kills = ["early", "after an epoch"] + ["mid-write"] * 3 + ["after an epoch"]
    epochs, killed_mid_write = [], 0
    for when in kills:
        process = start(out)
        if when == "early":
            time.sleep(0.2)                                    # while it imports: before any write
        elif when == "mid-write":
            wait_for(lambda: writing(out), process)            # a temporary file is open
            time.sleep(rng.uniform(0.0, 0.1))                  # this write or one of the next
        else:
            reached = checkpoint_epoch(out)
            wait_for(lambda: checkpoint_epoch(out) > reached, process)
            time.sleep(rng.uniform(0.0, 0.3))                  # anywhere in the next epoch
        killed_mid_write += writing(out)
        process.send_signal(signal.SIGKILL)
        process.wait()
        epochs.append(check_what_survived(out))
    process = start(out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()
    assert checkpoint_epoch(out) == EPOCHS
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
    assert killed_mid_write >= 2, "the kills meant to land in a write missed it"
    assert epochs == sorted(epochs) and 0 < epochs[-1] < EPOCHS, epochs
    print(f"\n{killed_mid_write} kills in the middle of a write; epochs saved after each kill: {epochs}")

