"""Publishing: the student edition holds no answer, both editions point at their own repository,
publishing is deterministic, and bad arguments are refused in one sentence.

(The student edition's notebooks and runtime are run in a Colab-like Python by
test_colab_like.py, and graded by the batch grader in test_batch_grading.py.)
"""
import ast
import filecmp
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.assign import boilerplate
from autograder.assign.publish import Refused, publish

ROOT = course.ROOT
STUDENTS, READERS = "example-course/resnet-students", "example-course/resnet-book"
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
OLD_PLACEHOLDERS = [boilerplate.UNPUBLISHED.repository, "resnet-course/resnet-gluon"]


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editions")
    publish("students", folder / "students", STUDENTS)
    publish("self-study", folder / "self-study", READERS)
    return folder


def secret_lines():
    """Every non-trivial line inside a solution or hidden-test region of source/ (what must never be
    published), except lines the notebooks give students anyway outside those regions (a helper
    that the answer naturally resembles, such as the loop of ``evaluate``)."""
    inside, outside = set(), set()
    for assignment in course.assignments():
        nb = nbformat.read(course.source_notebook(assignment), as_version=4)
        for cell in nb.cells:
            for _, body in REGION.findall(cell.source):
                inside |= {line.strip() for line in body.splitlines()}
            outside |= {line.strip() for line in REGION.sub("", cell.source).splitlines()}
    return {line for line in inside - outside if len(line) >= 12 and not line.startswith("#")}


def test_the_secrets_scanned_for_are_real():
    secrets = secret_lines()
    assert len(secrets) > 80
    assert "from autograder.grade.hidden import resnet18 as hidden" in secrets
    assert any("nn.Conv2D(" in line for line in secrets)  # the solutions themselves


def files_of(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def published_texts(folder):
    """(name, text) of every file of an edition, and of every member of the wheel pip builds from it."""
    for path in files_of(folder):
        yield str(path.relative_to(folder)), path.read_text(encoding="utf-8")


def wheel_texts(folder, tmp_path):
    copy = tmp_path / "build"
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "-w", str(tmp_path / "wheel"), str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in names:
            yield name, archive.read(name).decode("utf-8")


def test_student_edition_and_its_wheel_hold_no_answer(editions, tmp_path):
    folder = editions / "students"
    secrets = secret_lines()
    texts = list(published_texts(folder))
    wheel = list(wheel_texts(folder, tmp_path))
    assert any(name.startswith("autograder/student/checks/") for name, _ in wheel)
    assert any(name.endswith("gradable_cells/resnet18.json") for name, _ in wheel)
    for name, text in texts + wheel:
        present = {line.strip() for line in text.splitlines()} | {
            line.strip() for cell in _code_cells(name, text) for line in cell.splitlines()}
        leaked = secrets & present
        assert not leaked, (name, sorted(leaked)[:5])
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                       *OLD_PLACEHOLDERS):
            assert marker not in text, (name, marker)
    names = {name for name, _ in texts}
    assert not any(name.startswith(("source/", "notebooks/", "samples/", "autograder/grade", "autograder/assign",
                                    "tests/")) or name.endswith(".db") for name in names), names
    for name, text in texts + wheel:
        if name.endswith(".py"):  # the runtime never imports the instructor's side or nbgrader
            imported = {node.module or "" for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ImportFrom)}
            imported |= {alias.name for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import)
                         for alias in node.names}
            assert not {m for m in imported if m.startswith(("nbgrader", "autograder.grade", "autograder.assign"))
                        or m in (".grade", "..grade", "...grade")}, (name, imported)


def _code_cells(name, text):
    if not name.endswith(".ipynb"):
        return []
    return [cell.source for cell in nbformat.reads(text, as_version=4).cells]


@pytest.mark.parametrize("edition, repository, folder", [("students", STUDENTS, "release"),
                                                         ("self-study", READERS, "notebooks")])
def test_every_badge_and_setup_cell_points_at_the_edition(editions, edition, repository, folder):
    notebooks = sorted((editions / edition / folder).rglob("*.ipynb"))
    assert [p.stem for p in notebooks] == sorted(course.assignments())
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        where = path.relative_to(editions / edition).as_posix()
        cells = {cell.get("id"): cell.source for cell in nb.cells}
        assert f"https://colab.research.google.com/github/{repository}/blob/main/{where}" in cells["colab-badge"]
        assert f"https://github.com/{repository}/archive/refs/heads/main.zip" in cells["colab-setup"]
        links = re.findall(r"https://(?:colab\.research\.google\.com/github|github\.com)/([\w.-]+/[\w.-]+)",
                           path.read_text())
        assert links and set(links) == {repository}, (path, set(links))
    readme = (editions / edition / "README.md").read_text()
    assert readme.count(f"https://colab.research.google.com/github/{repository}/blob/main/") == len(notebooks)


def test_student_notebooks_are_the_release_with_valid_checksums(editions):
    from nbgrader.utils import compute_checksum
    for assignment in course.assignments():
        ours = nbformat.read(editions / "students" / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        release = nbformat.read(course.RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
        assert [c.id for c in ours.cells] == [c.id for c in release.cells]
        changed = {c.id for c, r in zip(ours.cells, release.cells) if c.source != r.source}
        assert changed == {"colab-badge", "colab-setup"}
        for cell in ours.cells:
            grading = cell.metadata.get("nbgrader", {})
            if "checksum" in grading:
                assert grading["checksum"] == compute_checksum(cell), cell.id


def test_self_study_edition_reads_as_a_book(editions):
    for path in (editions / "self-study" / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert not any("nbgrader" in cell.metadata for cell in nb.cells)
        assert "self-check" not in {cell.get("id") for cell in nb.cells}
        text = "\n".join(cell.source for cell in nb.cells)
        for wording in ("points", "In this assignment", "NBGRADER_EXECUTION", "being graded", "not graded",
                        "hidden test", "Hidden tests", "### BEGIN"):
            assert wording not in text, (path.name, wording)
        assert "### BEGIN SOLUTION" not in path.read_text()
        assert any(cell.cell_type == "code" and cell.outputs for cell in nb.cells)  # executed, with outputs
    assert (editions / "self-study" / "pyproject.toml").exists()
    assert not (editions / "self-study" / "release").exists()


def test_publishing_twice_gives_identical_trees(editions, tmp_path):
    for edition, repository in (("students", STUDENTS), ("self-study", READERS)):
        again = tmp_path / edition
        publish(edition, again, repository)
        first, second = files_of(editions / edition), files_of(again)
        assert [p.relative_to(editions / edition) for p in first] == [p.relative_to(again) for p in second]
        for a, b in zip(first, second):
            assert filecmp.cmp(a, b, shallow=False), a


def test_republishing_replaces_an_earlier_edition_and_keeps_git(tmp_path):
    folder = tmp_path / "students"
    publish("students", folder, STUDENTS)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "stale.txt").write_text("from an earlier course")
    publish("students", folder, "example-course/renamed", branch="spring-2027")
    assert not (folder / "stale.txt").exists() and (folder / ".git" / "HEAD").exists()
    badge = nbformat.read(folder / "release" / "resnet18" / "resnet18.ipynb", as_version=4).cells[0].source
    assert "example-course/renamed/blob/spring-2027/release/resnet18/resnet18.ipynb" in badge


@pytest.mark.parametrize("args, says", [
    (["students", "{out}"], "--repository OWNER/NAME"),
    (["students", "{out}", "--repository", "not a name"], "not a GitHub repository name"),
    (["students", "{out}", "--repository", "owner/name/extra"], "not a GitHub repository name"),
    (["students", "{out}", "--repository", "owner/name", "--branch", "a..b"], "not a usable branch name"),
    (["students", "{full}", "--repository", "owner/name"], "holds no earlier edition"),
])
def test_publish_refuses_in_one_sentence(tmp_path, args, says):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("the instructor's own file")
    argv = [a.format(out=tmp_path / "out", full=full) for a in args]
    result = subprocess.run([sys.executable, "-m", "autograder", "publish", *argv], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert (full / "notes.txt").read_text() == "the instructor's own file"
    assert not (tmp_path / "out").exists()


def test_another_edition_is_not_overwritten(tmp_path):
    publish("students", tmp_path / "students", STUDENTS)
    with pytest.raises(Refused, match="holds the students edition"):
        publish("self-study", tmp_path / "students", READERS)


def test_student_edition_has_the_guide_and_its_set_up_script(editions):
    folder = editions / "students"
    guide = (folder / "GUIDE.md").read_text()
    assert f"git clone https://github.com/{STUDENTS}.git resnet-course" in guide
    script = folder / "scripts" / "make_venv.sh"
    assert script.stat().st_mode & 0o111 and "requirements.txt -e ." in script.read_text()
    for line in ("scripts/make_venv.sh", ".venv/bin/jupyter lab release/resnet18/resnet18.ipynb"):
        assert line in (folder / "README.md").read_text()
        assert (folder / line.split()[-1]).exists()
    # Every file of this repository the guide names is in the edition (no tests/..., no grader).
    named = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|sh|md|ipynb|txt|toml))`", guide))
    assert named and all((folder / path).exists() for path in named), sorted(named)
