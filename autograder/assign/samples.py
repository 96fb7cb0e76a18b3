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
BASED_ON = re.compile(r"\A# based on: (\S+)[ \t]*$", re.M)


def read_answers(path):
    """{grade_id: code} from a sample file.

    A file that starts with ``# based on: <other sample>`` (a path relative to
    the file, without ``.py``) takes that sample's answers and replaces only
    the sections it gives, so a typical mistake is written as the cells that
    differ from a correct answer.
    """
    path = Path(path)
    text = path.read_text()
    base = BASED_ON.match(text)
    answers = read_answers(path.parent / f"{base.group(1)}.py") if base else {}
    parts = SECTION.split(text)
    answers.update({grade_id: code.strip("\n") + "\n" for grade_id, code in zip(parts[1::2], parts[2::2])})
    return answers


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
