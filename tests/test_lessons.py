"""Every lesson runs, as a learner runs it: `python lessons/NN_name.py`, in a fresh process.

A lesson asserts what it shows (the adjoint identity, a gradient check, the
same labels from both forms of the naive model...), so a broken engine makes
its lesson fail here. Pictures go to a temporary folder, never into the repo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
EXPECTED = ["01_pixels_and_windows.py", "02_im2col_by_hand.py", "03_convolution_and_its_transpose.py",
            "04_fcn_and_receptive_field.py", "05_unet_level_by_level.py",
            "06_autograd_on_a_tiny_graph.py", "07_cpu_and_gpu.py", "08_what_a_trained_unet_sees.py",
            "09_the_same_network_elsewhere.py"]


def test_the_lessons_follow_the_reading_path():
    assert sorted(path.name for path in LESSONS.glob("[0-9][0-9]_*.py")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_is_a_percent_format_notebook(name):
    text = (LESSONS / name).read_text(encoding="utf-8")
    assert text.startswith("# %% [markdown]\n# # Lesson ")         # a title cell first
    assert text.count("\n# %%\n") >= 3                             # and code cells after it


@pytest.mark.parametrize("name", EXPECTED)
def test_lesson_runs(name, tmp_path):
    out = tmp_path / "pictures"
    env = dict(os.environ, TINYSEG_LESSONS_OUT=str(out), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(LESSONS / name)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip()                                     # it prints what it shows
    written = {path.name for path in tmp_path.iterdir()}
    assert written <= {"pictures"}, f"{name} wrote {written - {'pictures'}} outside its folder"
    if name != "07_cpu_and_gpu.py":
        assert any(out.iterdir()), f"{name} made no picture"
