"""Sample submissions: a released notebook with some solution cells filled in.

A sample is a small Python file whose sections each start with a line
``# %% <grade_id>`` naming a solution cell; the code below it replaces that
cell of the released notebook. Sections left out keep the release's stub, so
an empty file is a blank submission. Keeping samples as answers rather than
whole notebooks means they follow every change of the release.
"""
import re
from pathlib import Path

import nbformat

SECTION = re.compile(r"^# %% (\S+)[ \t]*$", re.M)


def read_answers(path):
    """{grade_id: code} from a sample file."""
    parts = SECTION.split(Path(path).read_text())
    return {grade_id: code.strip("\n") + "\n" for grade_id, code in zip(parts[1::2], parts[2::2])}


def fill(release_nb, answers):
    """A copy of ``release_nb`` with the answered solution cells replaced."""
    nb = nbformat.from_dict(release_nb)
    solution_ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("solution")}
    unknown = set(answers) - solution_ids
    if unknown:
        raise ValueError(f"sample answers name cells that are not solution cells: {sorted(unknown)}")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id].rstrip("\n")
    return nb


def samples(assignment, samples_dir):
    """{student_id: sample path} for one assignment, sorted by student id."""
    return {p.stem: p for p in sorted(Path(samples_dir, assignment).glob("*.py"))}
