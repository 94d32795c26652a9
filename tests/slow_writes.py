"""The tinyseg command line with every file write slowed, for the tests that interrupt a command.

    process = subprocess.Popen(slow_writes_command(0.03, ["train", ...]), stdout=subprocess.PIPE)
    process.stdout.readline()              # b"started\n": the imports are done

Each fsync of tinyseg's one writer (tinyseg/files.py) first sleeps `delay`
seconds, so a signal sent at a drawn instant often lands while a temporary
file is open: the moment an atomic write has to be atomic.
"""

from __future__ import annotations

import sys

SCRIPT = """
import os, sys, time
delay = float(sys.argv[1])
real_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(delay)
    real_fsync(fd)
os.fsync = slow_fsync
from tinyseg.cli import main
print("started", flush=True)       # the imports are done: the command's own work begins
sys.exit(main(sys.argv[2:]))
"""


def slow_writes_command(delay: float, argv: list) -> list:
    """The argv of a Python process that runs `tinyseg ARGV` with each fsync `delay` seconds slower."""
    return [sys.executable, "-c", SCRIPT, str(delay), *argv]
