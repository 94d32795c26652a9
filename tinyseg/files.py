"""Every file tinyseg writes goes through one writer, which writes it whole or not at all.

    write_atomically("runs/unet/last.npz", data)     # data: the file's bytes
    write_png("masks/a_mask.png", picture)           # a Pillow image, encoded, then written so

Checkpoints, history files, masks, overlays, probability files and every
picture are first made in memory (a PNG encoded into bytes, a checkpoint
zipped into bytes) and then written in three steps:

    1. write the bytes to a temporary file in the same folder, ".tmp-XXXX<name>"
    2. flush it to the disk (fsync)
    3. rename it over the target: os.replace, one atomic step on POSIX and Windows

Until step 3 the old file (or no file) is there; after it, the new one is.
So an interruption at any instant, Ctrl-C (SIGINT) or `kill -9` (SIGKILL),
never leaves a file cut short under its real name. Ctrl-C during step 1 or 2
removes the temporary file; a `kill -9` cannot, so a killed writer may leave
a ".tmp-*" file behind, which is hidden (a dot file), never read as a
result, and cleared by `remove_temporaries` the next time train or predict
writes into that folder.
"""

from __future__ import annotations

import io
import os
import tempfile

TEMPORARY_PREFIX = ".tmp-"     # files being written; never a finished file


def umask_mode() -> int:
    """The mode open() gives a new file: read and write for all, less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = umask_mode()


def write_atomically(path, data: bytes) -> None:
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
        os.chmod(temporary, NEW_FILE_MODE)   # mkstemp makes it private (0600); a result is not
        os.replace(temporary, path)  # the one atomic step
    except BaseException:            # Ctrl-C included: no temporary file is left behind
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_png(path, picture) -> None:
    """Encode a Pillow image as PNG in memory and write it atomically."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())


def remove_temporaries(folder) -> list:
    """Delete the `.tmp-*` files a killed writer left in `folder`; returns their names."""
    if not os.path.isdir(folder):
        return []
    stale = sorted(name for name in os.listdir(folder) if name.startswith(TEMPORARY_PREFIX))
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale
