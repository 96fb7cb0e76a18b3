"""Everything derived from source/, made by one command (``python -m autograder build``).

* ``release/<a>/<a>.ipynb``: the student version, made by nbgrader itself.
* ``notebooks/<a>.ipynb``: the self-study version, which reads as a book:
  solutions kept; nbgrader markers, metadata, every test cell (hidden or
  visible) and every cell that only calls the checks, cells tagged
  ``assignment-only``, points and the code branches that only run during
  grading removed; exercise wording turned into a book's (headings without
  "Exercise", "Write ..." as "The code below defines ...", hints as notes);
  every cell executed except the ones tagged ``skip-execution`` (they need
  the real data set).
* ``autograder/student/gradable_cells/<a>.json``: what the notebooks' self-check
  compares a student's notebook with.

The Colab badge, setup cell and self-check of every notebook are owned by
``boilerplate.py``; the build refreshes them in ``source/`` first.

The tests rebuild both into a temporary folder and fail if the committed
copies differ.
"""
import ast
import os
import re
import shutil
import textwrap
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors.coalescestreams import CoalesceStreamsPreprocessor

from .. import course
from ..student import selfcheck
from . import boilerplate
from ..grade.nbgrader_cli import nbgrader

SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")
HIDDEN_REGION = re.compile(r"^\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
# Assignment wording a book reader should not see, in markdown cells: (pattern, replacement).
BOOK_WORDING = [(re.compile(r" \(\d+ points?\)"), ""),
                (re.compile(r" \(optional, not graded\)"), " (optional)"),
                (re.compile(r" \(not graded\)"), ""),
                (re.compile(r"\bIn this assignment\b"), "In this notebook"),
                (re.compile(r"\bIn this notebook you\b"), "In this notebook we"),
                # "### Exercise 1: the `Bottleneck` block" -> "### The `Bottleneck` block"
                (re.compile(r"^(#+ (?:\d+\. )?)Exercise(?: \d+)?: (\S)", re.M),
                 lambda m: m.group(1) + m.group(2).upper()),
                (re.compile(r"\bWrite (the class )?`"), r"The code below defines \1`"),
                (re.compile(r"\*Hint:\*"), "*Note:*"),
                (re.compile(r"\(your numbers differ;"), "(the numbers differ from run to run;")]
# A line that imports the visible checks, and a cell made only of calls to them: the book has no checks.
CHECK_IMPORT = re.compile(r"^from autograder\.student\.checks import \w+ as check\n", re.M)
CHECK_CALL = re.compile(r"^check\.\w+\(.*\)$")
GRADING_FLAG = "NBGRADER_EXECUTION"
# The book's figures are drawn into the notebook whatever backend the build's own environment names
# (the test set-up exports MPLBACKEND=Agg, which would leave every plot cell without its picture).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def refresh_boilerplate():
    """Insert or refresh the Colab badge, setup cell and self-check in each source notebook."""
    for assignment in course.assignments():
        path = course.source_notebook(assignment)
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        boilerplate.apply(nb, assignment)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)


def generate_release(out_dir):
    """Run ``nbgrader generate_assignment`` on a copy of source/ and put the result in ``out_dir``."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        shutil.copytree(course.SOURCE, work / "source")
        shutil.copy(course.ROOT / "nbgrader_config.py", work)
        for assignment in course.assignments():
            nbgrader(work, "generate_assignment", assignment, "--force", "--no-db")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(work / "release", out_dir)


def without_grading_branch(code):
    """``code`` with each top-level ``if <...NBGRADER_EXECUTION...>: ... else: ...`` replaced by
    its ``else`` body: a reader's notebook is never graded. An ``import os`` left unused goes too."""
    tree = ast.parse(code)
    lines = code.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and GRADING_FLAG in ast.get_source_segment(code, node.test):
            body = "\n".join(lines[node.orelse[0].lineno - 1:node.end_lineno]) if node.orelse else ""
            lines[node.lineno - 1:node.end_lineno] = textwrap.dedent(body).splitlines()
    text = "\n".join(lines)
    if not re.search(r"\bos\.", text):
        text = re.sub(r"^import os\n\n?", "", text, flags=re.M)
    return text


def as_book(cell):
    """A cell of the self-study notebook, without the assignment's wording, grading branches and checks."""
    if cell.cell_type == "markdown":
        for pattern, replacement in BOOK_WORDING:
            cell.source = pattern.sub(replacement, cell.source)
    elif cell.cell_type == "code":
        if GRADING_FLAG in cell.source:
            cell.source = without_grading_branch(cell.source)
        cell.source = CHECK_IMPORT.sub("", cell.source)
    return cell


def only_checks(code):
    """Whether ``code`` does nothing but comment and call the visible checks."""
    lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and all(CHECK_CALL.match(line) for line in lines)


def self_study(source_nb):
    """The complete reading version of a source notebook, not yet executed."""
    nb = nbformat.read(source_nb, as_version=4)
    cells = []
    for cell in nb.cells:
        if "assignment-only" in cell.metadata.get("tags", []):
            continue  # how to fill in and submit: nothing for a reader
        grading = cell.metadata.pop("nbgrader", {})
        text = cell.source
        if cell.cell_type == "code":
            text = HIDDEN_REGION.sub("", text)
            text = "\n".join(line for line in text.splitlines() if not SOLUTION_MARKER.match(line))
            if grading.get("grade") or only_checks(text):
                continue  # a test cell or a self-check: the book shows the answers, not their tests
        cell.source = text.strip("\n")
        cells.append(as_book(cell))
    nb.cells = cells
    return boilerplate.apply(nb, Path(source_nb).stem, variant="self-study")


def execute(nb, cwd):
    """Run every cell not tagged skip-execution, as a reader would see it, figures included."""
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                   skip_cells_with_tag="skip-execution", record_timing=False).execute(
        env={**os.environ, "MPLBACKEND": INLINE_BACKEND})
    # One output per stream, however the kernel happened to flush it: rebuilds give the same file.
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    return nb


def write_self_study(out_dir, run=True):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for assignment in course.assignments():
        nb = self_study(course.source_notebook(assignment))
        if run:
            with tempfile.TemporaryDirectory() as cwd:
                execute(nb, cwd)
        nbformat.write(nb, out_dir / f"{assignment}.ipynb")


def build(run=True):
    refresh_boilerplate()
    generate_release(course.RELEASE)
    for assignment in course.assignments():
        selfcheck.write_gradable_cells(course.RELEASE / assignment / f"{assignment}.ipynb")
    write_self_study(course.SELF_STUDY, run=run)
