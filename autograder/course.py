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
