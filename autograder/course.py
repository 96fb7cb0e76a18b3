"""Where things are in the course directory, in one place."""
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
SELF_STUDY = ROOT / "notebooks"
SAMPLES = ROOT / "samples"

# The series, in teaching order. Each assignment holds one notebook of the same name.
ASSIGNMENTS = ["resnet18", "bottleneck"]

# The two cells the build puts into every notebook that the grader never runs: the Colab setup
# cell and the student's self-check (autograder/assign/boilerplate.py writes them).
SETUP_CELL_ID = "colab-setup"
SELF_CHECK_CELL_ID = "self-check"

# The modules whose parts the test cells of each assignment call, by the name a cell calls them
# through: `check` (visible tests, the student runtime) and `hidden` (hidden tests, the grader).
CHECK_MODULES = {assignment: {"check": f"autograder.student.checks.{assignment}",
                              "hidden": f"autograder.grade.hidden.{assignment}"}
                 for assignment in ASSIGNMENTS}

# What the sandboxed worker imports to observe a submission: each module's OBSERVERS, by part name.
# Everything these modules import is bound into the sandbox, and a notebook can read and print it:
# observers record what the student's code does, never what is expected of it.
OBSERVER_MODULES = {assignment: [f"autograder.student.checks.{assignment}", f"autograder.sandboxed.observers.{assignment}"]
                    for assignment in ASSIGNMENTS}

# The package paths bound into the sandbox (relative to autograder/): the published student runtime
# and autograder/sandboxed/ (the worker and the hidden parts' observers). Judges, references,
# intake, recording and authoring (autograder/grade/, autograder/assign/) never enter it.
SANDBOX_PACKAGE_PATHS = ("__init__.py", "student", "sandboxed")


def assignments():
    """The assignments of the series that exist in source/."""
    return [name for name in ASSIGNMENTS if (SOURCE / name / f"{name}.ipynb").exists()]


def source_notebook(assignment):
    return SOURCE / assignment / f"{assignment}.ipynb"


def db_url(course_dir, override=None):
    """The gradebook's database URL for ``course_dir``, as nbgrader itself resolves it.

    ``override`` (the grade command's ``--db-url``) wins; otherwise nbgrader's
    configured ``CourseDirectory.db_url`` (the Jupyter config folders, then the
    course's own ``nbgrader_config.py``); otherwise nbgrader's default,
    ``sqlite:///<course_dir>/gradebook.db``. Several graders (instructor, TAs)
    can share one gradebook by configuring the same PostgreSQL URL.
    """
    if override:
        return override
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    config = Config()
    for folder in [*reversed(jupyter_config_path()), str(course_dir)]:
        try:
            config.merge(PyFileConfigLoader("nbgrader_config.py", path=folder).load_config())
        except ConfigFileNotFound:
            pass
    return CourseDirectory(root=str(Path(course_dir).resolve()), config=config).db_url


def parts_of(notebook):
    """[(part, [grade_id, ...])] in notebook order.

    A graded cell belongs to the exercise (solution cell) before it when its
    grade_id starts with that exercise's id; otherwise it is a part of its own
    (for example a check of the whole network built from several exercises).
    """
    parts, current = [], None
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            current = meta["grade_id"]
        elif meta.get("grade"):
            gid = meta["grade_id"]
            part = current if current and gid.startswith(current) else gid
            if not parts or parts[-1][0] != part:
                parts.append((part, []))
            parts[-1][1].append(gid)
    return parts


def max_scores(assignment):
    nb = nbformat.read(source_notebook(assignment), as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    return {part: sum(points[g] for g in ids) for part, ids in parts_of(source_notebook(assignment))}
