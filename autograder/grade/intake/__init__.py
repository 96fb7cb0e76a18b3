"""Intake: from whatever an instructor received to clean, gradable notebooks.

Two steps, usable on their own:

* :func:`collect` (``collect.py``): folders, zips (Canvas, Moodle, plain),
  nbgrader ``submitted/`` trees and single files -> one :class:`Entry` per
  file, copied under a work folder, with a valid unique student id;
* :func:`load_submission` (``restore.py``): one file -> ``(notebook,
  notes)`` rebuilt on the release's skeleton, or :class:`Unusable` with a
  one-line reason; :func:`restore_limited` (``limited.py``) does the same
  in a child process under a time and memory limit.

:func:`intake` chains them for one assignment of this course, restoring
each file under limits, several at a time; any failure with one file
becomes that file's reason.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .collect import Entry, collect, read_roster, roster_missing, slug
from .limited import LimitExceeded, Limits, restore_limited, restore_limited_as_text
from .restore import Unusable, load_submission

__all__ = ["Entry", "Intake", "Limits", "Unusable", "collect", "intake", "load_submission", "read_roster",
           "restore_entries", "restore_limited", "restoring", "roster_missing", "slug"]


@dataclass
class Intake:
    """One received file after intake: ``notebook`` is None exactly when ``reason`` says why;
    ``refused``: restoring the file (not collecting it) gave that reason, and would give it again
    (not a time limit a busy machine may have caused)."""
    entry: Entry
    notebook: nbformat.NotebookNode | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    refused: bool = False
    text: str | None = None  # the notebook as nbformat writes it to a file, when restored

    @property
    def student_id(self):
        return self.entry.student_id


def intake(inputs, assignment, workdir, roster=None, course_dir=None):
    """[Intake] for every file of ``inputs``; notebooks from this course's release and sources.

    ``course_dir`` defaults to this repository (``release/`` and ``source/``).
    """
    return restore_entries(collect(inputs, assignment, roster=roster, workdir=workdir), assignment, course_dir)


def restore_entries(entries, assignment, course_dir=None, limits=Limits()):
    """[Intake] for collected entries, in their order: each usable file restored on the release's
    skeleton, in a limited child process (``limited.py``), as many at a time as there are cores."""
    return list(restoring(entries, assignment, course_dir, limits))


def restoring(entries, assignment, course_dir=None, limits=Limits()):
    """:func:`restore_entries` as an iterator: restoring starts at once, in the background, and each
    [Intake] comes, in the entries' order, as soon as it and those before it are ready, so a batch
    runs the first notebooks while the last files are restored (in the order it was given: the
    same order every time)."""
    from ... import course
    root = Path(course_dir) if course_dir else course.ROOT
    release = root / "release" / assignment / f"{assignment}.ipynb"
    sources = {a: root / "source" / a / f"{a}.ipynb" for a in course.ASSIGNMENTS
               if (root / "source" / a / f"{a}.ipynb").exists()}

    def one(entry):
        result = Intake(entry, notes=list(entry.notes))
        if entry.reason:
            result.reason = entry.reason
            return result
        try:
            result.notebook, notes, result.text = restore_limited_as_text(entry.path, release, sources, assignment,
                                                                          limits)
            result.notes += notes
        except Unusable as error:
            result.reason, result.refused = error.reason, not isinstance(error, LimitExceeded)
        return result

    # At least two at a time: a file slow to restore never stops the restoring of the next ones.
    threads = ThreadPoolExecutor(max(2, os.cpu_count() or 1))
    restored = [threads.submit(one, entry) for entry in entries]  # every file handed over now

    def in_order():
        try:
            for future in restored:
                yield future.result()
        finally:
            threads.shutdown(wait=True, cancel_futures=True)
    return in_order()
