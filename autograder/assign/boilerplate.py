"""The cells every course notebook starts and ends with, and the repository they point to.

:func:`apply` puts into a notebook, keyed on fixed cell ids (so applying
again refreshes them instead of adding copies):

1. ``colab-badge``: the first cell, an *Open in Colab* badge for this very
   notebook and one sentence on the setup cell;
2. ``colab-setup``: the setup cell right after it. On Colab (or with
   ``RESNET_COURSE_SETUP`` set) it installs this package from the repository
   and calls :func:`autograder.student.colab.setup`; anywhere else it does nothing and
   prints nothing. It is plain Python (no ``!pip``) and cannot import the
   package before installing it, hence the few lines of bootstrap;
3. ``sources``: the Sources section (:data:`autograder.assign.sources.SOURCES`),
   after the notebook's own cells in every variant;
4. ``submit-text`` and ``self-check``, the last two cells of the release
   version: how to submit, and :func:`autograder.student.selfcheck.check_notebook`,
   which says whether the notebook is still gradable.

In the release variant they carry locked nbgrader metadata (not graded, not a
solution, ``grade_id`` = cell id), so ``nbgrader generate_assignment`` keeps
them, checksums them, and restores them when grading; in both variants they
carry Jupyter's ``editable: false`` and ``deletable: false``. The self-study
variant has no nbgrader metadata (like the rest of that notebook) and no
submission cells.

Where the links point is a :class:`Home`: a GitHub repository and branch.
This private repository's own copies (``source/``, ``release/``,
``notebooks/``) point at :data:`UNPUBLISHED`, a name that exists nowhere;
``python -m autograder publish`` points every published notebook at the
public repository it is published to (:func:`point_at`).
"""
import copy
from typing import NamedTuple

from .. import course
from .sources import SOURCES


class Home(NamedTuple):
    """A GitHub repository ("owner/name") and branch that notebooks open from and the runtime installs from."""
    repository: str
    branch: str = "main"

    def colab_url(self, path):
        """Colab's link that opens the notebook at ``path`` in the repository straight from GitHub."""
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.branch}/{path}"

    def package_url(self):
        """What the setup cell gives to pip: the branch as a zip archive (no git needed)."""
        return f"https://github.com/{self.repository}/archive/refs/heads/{self.branch}.zip"


UNPUBLISHED = Home("unpublished/resnet-course")

BADGE_ID = "colab-badge"
SETUP_ID = course.SETUP_CELL_ID
SOURCES_ID = "sources"
SUBMIT_TEXT_ID = "submit-text"
SELF_CHECK_ID = course.SELF_CHECK_CELL_ID
CELL_IDS = (BADGE_ID, SETUP_ID, SOURCES_ID, SUBMIT_TEXT_ID, SELF_CHECK_ID)

VARIANTS = ("release", "self-study")

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def notebook_path(assignment, variant="release"):
    """The notebook's path inside the repository."""
    if variant == "release":
        return f"release/{assignment}/{assignment}.ipynb"
    if variant == "self-study":
        return f"notebooks/{assignment}.ipynb"
    raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")


def badge_source(colab_url):
    return (f"[![Open In Colab]({BADGE_IMAGE})]({colab_url})\n"
            "\n"
            "*In Google Colab*, run the setup cell below first: it installs MXNet 1.9.1 and d2l "
            "(about a minute; a few minutes on a GPU runtime, which makes the training much faster). "
            "*In Jupyter on your own computer* it does nothing.")


def setup_source(home=UNPUBLISHED):
    """The setup cell's code.

    A failed install of the package stops the cell with one sentence that
    says why, as :class:`autograder.student.colab.SetupFailed` does later on
    (the class cannot be imported before the package is installed, so the
    cell defines its twin), reading pip's output for the same words as
    :func:`autograder.student.colab.pip_failure`.
    """
    from ..student.colab import PIP_NO_NETWORK, PIP_NOT_FOUND
    return f'''# @title Setup for Google Colab: run this cell first {{ display-mode: "form" }}
# On Colab it installs MXNet 1.9.1, d2l 1.0.3 and the course's checks; elsewhere it does nothing.
import importlib, os, re, subprocess, sys, time
if "google.colab" in sys.modules or os.environ.get("RESNET_COURSE_SETUP"):
    _started = time.time()
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
                           os.environ.get("RESNET_COURSE_PACKAGE", "{home.package_url()}")],
                          capture_output=True, text=True)
    if _pip.returncode:
        class SetupFailed(Exception):
            """Shown as its message alone, no traceback; still an error, so "Run all" stops here."""
            def _render_traceback_(self):
                return [str(self)]
        _said = re.sub(r"\\x1b\\[[0-9;]*m", "", _pip.stderr)  # pip colours its errors in a notebook
        if any(word in _said for word in {PIP_NO_NETWORK!r}):
            _why = "there is no internet connection (pip could not download the course package)"
        elif any(word in _said for word in {PIP_NOT_FOUND!r}):
            _why = f"the course package was not found at {{_pip.args[-1]}} (please tell your instructor)"
        else:
            _why = "pip could not install the course package: " + " ".join(_said.strip().splitlines()[-2:])
        raise SetupFailed(f"Setup failed: {{_why}}.")
    importlib.invalidate_caches()
    from autograder.student import colab
    colab.setup(started=_started)'''


def submit_text_source(assignment):
    return ("## Before you submit\n"
            "\n"
            "Run the cell below. It checks that the notebook can still be graded: that every graded "
            "and answer cell is present exactly once and still carries its grading metadata. If it "
            "reports a problem, it says what to fix.\n"
            "\n"
            f"Then save the notebook and submit the file `{assignment}.ipynb` as your course tells you "
            "(in Colab: *File > Download > Download .ipynb*).")


def self_check_source(assignment):
    return ("# Checks that this notebook is still gradable; change nothing here.\n"
            "from autograder.student import selfcheck\n"
            f'selfcheck.check_notebook("{assignment}")')


def _locked_metadata(grade_id, variant, extra=None):
    """Locked for Jupyter (not editable or deletable) and, in the release, for nbgrader.

    The self-study version carries no nbgrader metadata at all (build.self_study
    removes it), so its cells get only Jupyter's flags.
    """
    metadata = {"deletable": False, "editable": False}
    if variant == "release":
        metadata["nbgrader"] = {
            "grade": False,
            "grade_id": grade_id,
            "locked": True,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
    metadata.update(extra or {})
    return metadata


def cells(assignment, variant="release"):
    """The boilerplate cells for one notebook of this repository: (first cells, last cells)."""
    import nbformat
    url = UNPUBLISHED.colab_url(notebook_path(assignment, variant))
    badge = nbformat.v4.new_markdown_cell(badge_source(url), id=BADGE_ID,
                                          metadata=_locked_metadata(BADGE_ID, variant))
    setup = nbformat.v4.new_code_cell(setup_source(), id=SETUP_ID,
                                      metadata=_locked_metadata(SETUP_ID, variant, {"cellView": "form"}))
    first = [badge, setup]
    sources = nbformat.v4.new_markdown_cell(SOURCES.rstrip("\n"), id=SOURCES_ID, metadata=_locked_metadata(SOURCES_ID, variant))
    if variant == "self-study":
        return first, [sources]  # not submitted: nothing to check
    submit = nbformat.v4.new_markdown_cell(submit_text_source(assignment), id=SUBMIT_TEXT_ID,
                                           metadata=_locked_metadata(SUBMIT_TEXT_ID, variant))
    check = nbformat.v4.new_code_cell(self_check_source(assignment), id=SELF_CHECK_ID,
                                      metadata=_locked_metadata(SELF_CHECK_ID, variant))
    return first, [sources, submit, check]


def _is_boilerplate(cell):
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return cell.get("id") in CELL_IDS or grade_id in CELL_IDS


def apply(nb, assignment, variant="release"):
    """Return ``nb`` with the boilerplate cells inserted or refreshed (idempotent).

    ``nb`` is an nbformat v4 notebook (it is modified in place and returned).
    ``variant="release"`` (for source/ and hence the release) adds the badge
    and setup cell at the top and the sources, submit text and self-check at the end;
    ``variant="self-study"`` links the badge to ``notebooks/<assignment>.ipynb``
    and leaves out (removes) the two submission cells (the sources stay).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    first, last = cells(assignment, variant)
    kept = [cell for cell in nb.cells if not _is_boilerplate(cell)]
    nb.cells = [copy.deepcopy(c) for c in first] + kept + [copy.deepcopy(c) for c in last]
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        nb.nbformat, nb.nbformat_minor = 4, 5  # cell ids need nbformat 4.5
    return nb


def point_at(nb, home, path):
    """Point the badge and setup cell of ``nb`` (as built) at ``home``, the notebook being at ``path``
    there. Returns the changed cells (their nbgrader checksums, if any, need recomputing)."""
    sources = {BADGE_ID: badge_source(home.colab_url(path)), SETUP_ID: setup_source(home)}
    changed = []
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        key = cell.get("id") if cell.get("id") in sources else grade_id
        if key in sources and cell.source != sources[key]:
            cell.source = sources[key]
            changed.append(cell)
    missing = set(sources) - {cell.get("id") for cell in nb.cells}
    if missing:
        raise ValueError(f"the notebook lacks the boilerplate cells {sorted(missing)}: rebuild it")
    return changed
