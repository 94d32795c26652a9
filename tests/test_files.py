"""files.py, the one writer: a file appears whole under its name, with the mode any new file gets."""

import os

import pytest

from tinyseg.files import TEMPORARY_PREFIX, remove_temporaries, write_atomically


def test_a_written_file_has_the_mode_open_would_give_it(tmp_path):
    """The temporary file is private (mkstemp), but the finished one is like any file the user makes."""
    write_atomically(tmp_path / "a.txt", b"x")
    (tmp_path / "b.txt").write_bytes(b"x")
    assert (tmp_path / "a.txt").stat().st_mode == (tmp_path / "b.txt").stat().st_mode


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "last.npz"
    write_atomically(target, b"old")

    def interrupted(fd):
        raise KeyboardInterrupt                       # Ctrl-C while the new bytes are being flushed
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["last.npz"]


def test_temporaries_a_kill_left_are_removed(tmp_path):
    (tmp_path / f"{TEMPORARY_PREFIX}abc_mask.png").write_bytes(b"half")
    (tmp_path / "a_mask.png").write_bytes(b"whole")
    assert remove_temporaries(tmp_path) == [f"{TEMPORARY_PREFIX}abc_mask.png"]
    assert os.listdir(tmp_path) == ["a_mask.png"]
