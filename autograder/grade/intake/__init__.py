"""Intake: from whatever an instructor received to clean, gradable notebooks.

Two steps, usable on their own:

* :func:`collect` (``collect.py``): folders, zips (Canvas, Moodle, plain),
  nbgrader ``submitted/`` trees and single files -> one :class:`Entry` per
  file, copied under a work folder, with a valid unique student id;
* :func:`load_submission` (``restore.py``): one file -> ``(notebook,
  notes)`` rebuilt on the release's skeleton, or :class:`Unusable` with a
  one-line reason.

:func:`intake` chains them for one assignment of this course.
"""
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .collect import Entry, collect, read_roster, roster_missing, slug
from .restore import Unusable, load_submission

__all__ = ["Entry", "Intake", "Unusable", "collect", "intake", "load_submission", "read_roster",
           "restore_entries", "roster_missing", "slug"]


@dataclass
class Intake:
    """One received file after intake: ``notebook`` is None exactly when ``reason`` says why."""
    entry: Entry
    notebook: nbformat.NotebookNode | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def student_id(self):
        return self.entry.student_id


def intake(inputs, assignment, workdir, roster=None, course_dir=None):
    """[Intake] for every file of ``inputs``; notebooks from this course's release and sources.

    ``course_dir`` defaults to this repository (``release/`` and ``source/``).
    """
    return restore_entries(collect(inputs, assignment, roster=roster, workdir=workdir), assignment, course_dir)


def restore_entries(entries, assignment, course_dir=None):
    """[Intake] for collected entries: each usable file restored on the release's skeleton."""
    from ... import course
    root = Path(course_dir) if course_dir else course.ROOT
    release = nbformat.read(root / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    sources = {a: nbformat.read(root / "source" / a / f"{a}.ipynb", as_version=4)
               for a in course.ASSIGNMENTS if (root / "source" / a / f"{a}.ipynb").exists()}
    results = []
    for entry in entries:
        result = Intake(entry, notes=list(entry.notes))
        if entry.reason:
            result.reason = entry.reason
        else:
            try:
                result.notebook, notes = load_submission(entry.path, release, sources[assignment], sources,
                                                         assignment=assignment)
                result.notes += notes
            except Unusable as error:
                result.reason = error.reason
        results.append(result)
    return results
