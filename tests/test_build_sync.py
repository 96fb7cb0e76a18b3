"""release/ and notebooks/ are exactly what the build makes from source/ (drift fails here)."""
import nbformat
import pytest
from nbgrader.validator import Validator

from autograder import course
from autograder.assign import build
from autograder.grade.nbgrader_cli import nbgrader


def _code_and_text(nb):
    return [(c.cell_type, c.source, c.metadata.get("nbgrader"), c.metadata.get("tags")) for c in nb.cells]


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    build.generate_release(out)
    return out


@pytest.mark.parametrize("assignment", course.assignments())
def test_committed_release_is_what_nbgrader_generates(fresh_release, assignment):
    committed = nbformat.read(course.RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    fresh = nbformat.read(fresh_release / assignment / f"{assignment}.ipynb", as_version=4)
    assert committed == fresh, "release/ is stale: run `python -m autograder build`"


def test_release_holds_exactly_the_assignments():
    assert sorted(p.name for p in course.RELEASE.iterdir()) == sorted(course.assignments())


@pytest.mark.parametrize("assignment", course.assignments())
def test_committed_self_study_notebook_matches_source(assignment):
    committed = nbformat.read(course.SELF_STUDY / f"{assignment}.ipynb", as_version=4)
    fresh = build.self_study(course.source_notebook(assignment))
    assert _code_and_text(committed) == _code_and_text(fresh), \
        "notebooks/ is stale: run `python -m autograder build`"


@pytest.mark.parametrize("assignment", course.assignments())
def test_self_study_notebook_has_solutions_outputs_and_no_grading_markup(assignment):
    nb = nbformat.read(course.SELF_STUDY / f"{assignment}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "BEGIN SOLUTION" not in code and "HIDDEN TESTS" not in code
    assert "raise NotImplementedError" not in code
    assert not any("nbgrader" in c.metadata for c in nb.cells)
    executed = [c for c in nb.cells if c.cell_type == "code" and "skip-execution" not in c.metadata.get("tags", [])]
    assert executed and all(c.outputs or c.execution_count for c in executed)
    skipped = [c for c in nb.cells if "skip-execution" in c.metadata.get("tags", [])]
    assert all(not c.outputs for c in skipped), "no invented outputs for cells that need the real data"
    errors = [o for c in executed for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("assignment", course.assignments())
def test_source_notebooks_carry_no_outputs_and_stable_ids(assignment):
    nb = nbformat.read(course.source_notebook(assignment), as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    for cell in nb.cells:
        assert cell.id == cell.metadata["nbgrader"]["grade_id"]


@pytest.mark.parametrize("assignment", course.assignments())
def test_source_passes_nbgrader_validate(assignment):
    assert Validator().validate(str(course.source_notebook(assignment))) == {}


def test_every_graded_test_fails_on_the_blank_release(tmp_path):
    """`nbgrader validate --invert` on the release with its hidden tests kept in."""
    import shutil
    shutil.copytree(course.SOURCE, tmp_path / "source")
    shutil.copy(course.ROOT / "nbgrader_config.py", tmp_path)
    for assignment in course.assignments():
        nbgrader(tmp_path, "generate_assignment", assignment, "--no-db", "--ClearHiddenTests.enabled=False")
        blank = tmp_path / "release" / assignment / f"{assignment}.ipynb"
        assert "BEGIN HIDDEN TESTS" in blank.read_text()
        assert Validator(invert=True).validate(str(blank)) == {}, f"a test of {assignment} passes on a blank notebook"
