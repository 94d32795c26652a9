"""Progress bars: tqdm's, when it is installed and wanted; otherwise nothing is drawn.

    for batch in progress(loader, len(loader), "epoch 1/10"): ...
    for i in progress(range(n), n, "checking the data", delay=2): ...   # only if it takes > 2 s

tqdm is an optional extra (pip install 'tinyseg[train]'); without it every
loop runs the same, silently. `delay` shows the bar only once the loop has
run that many seconds, so quick passes stay quiet.
"""

from __future__ import annotations


def progress(iterable, total: int, description: str, enabled: bool = True, delay: float = 0.0):
    """A tqdm progress bar over `iterable` if tqdm is installed (and enabled), else the iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True, delay=delay)
