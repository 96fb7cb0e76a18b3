"""Where things are in the course directory, in one place."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
SELF_STUDY = ROOT / "notebooks"
SAMPLES = ROOT / "samples"

# The series, in teaching order. Each assignment holds one notebook of the same name.
ASSIGNMENTS = ["resnet18", "bottleneck"]

# The modules whose parts the test cells of each assignment call, by the name a cell calls them
# through: `check` (visible tests, the student runtime) and `hidden` (hidden tests, the grader).
CHECK_MODULES = {assignment: {"check": f"autograder.student.checks.{assignment}",
                              "hidden": f"autograder.grade.hidden.{assignment}"}
                 for assignment in ASSIGNMENTS}


def assignments():
    """The assignments of the series that exist in source/."""
    return [name for name in ASSIGNMENTS if (SOURCE / name / f"{name}.ipynb").exists()]


def source_notebook(assignment):
    return SOURCE / assignment / f"{assignment}.ipynb"
