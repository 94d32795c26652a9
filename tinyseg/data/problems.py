"""DataError: every problem found in a folder of images, in one message.

A folder of a thousand photographs rarely has just one thing wrong with it.
Stopping at the first broken file and making the user fix, rerun, fix,
rerun is slow; so the folder reader checks every file, writes down what is
wrong with each, and raises ONE error at the end that lists them all:

    3 problems in data/cells:
      data/cells/images/a.tif: not an image Pillow can read (cannot identify image file)
      data/cells/masks/b.png: 640x480 (width x height) but its image b.tif is 480x640
      data/cells/masks/c.jpg: a JPEG; masks must be PNG or TIFF (JPEG changes the label values)

Past 20 lines the list is cut ("... and 13 more"): the first ones usually
tell what went wrong with the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

SHOWN_PROBLEMS = 20


class DataError(ValueError):
    """One or more problems with the files of a dataset (or the inputs of predict).

    where: the folder (or a description such as "the input files") the problems are in.
    problems: (path, what is wrong) pairs, one per problem, in the order found.

    `error.problems` keeps the whole list, also the lines the message leaves out.
    """

    def __init__(self, where, problems: Sequence[tuple[object, str]]):
        self.where = str(where)
        self.problems = [(str(path), str(what)) for path, what in problems]
        super().__init__(describe_problems(self.where, self.problems))


def describe_problems(where: str, problems: list[tuple[str, str]]) -> str:
    """"N problem(s) in WHERE:" and one indented line per problem, cut after SHOWN_PROBLEMS."""
    count = len(problems)
    lines = [f"{count} problem{'s' if count != 1 else ''} in {where}:"]
    lines += [f"  {path}: {what}" for path, what in problems[:SHOWN_PROBLEMS]]
    if count > SHOWN_PROBLEMS:
        lines.append(f"  ... and {count - SHOWN_PROBLEMS} more")
    return "\n".join(lines)


def file_error(path, what: str) -> DataError:
    """A DataError about one file, as the file readers raise it."""
    return DataError(Path(path).parent, [(path, what)])


class OutOfTime(ValueError):
    """The time budget ran out in the middle of a task (load_folder's `deadline`).

    task: what was being done ("checking the data"); done, total: how far it got, in `units`.
    A ValueError, like DataError, so the command line prints it as one line.
    """

    def __init__(self, task: str, done: int, total: int, units: str = "items"):
        self.task, self.done, self.total = task, int(done), int(total)
        super().__init__(f"the time budget ran out while {task} ({done} of {total} {units} read): "
                         "raise --time-budget")
