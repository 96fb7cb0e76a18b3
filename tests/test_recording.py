"""Several recorders write exactly what one nbgrader round over the whole batch writes.

The batch grader records each judged submission at once, in several recorder
processes (``autograder/grade/recording.py``) that keep nbgrader's converters
warm between students. Before, one process ran nbgrader's ``autograde`` and
then ``generate_feedback`` over every submission of the batch. Here the
resnet18 samples are graded by the batch grader with three recorders, and
their verdicts are recorded again the old way, by the real ``nbgrader``
commands over the whole batch (ApplyVerdicts reads the same verdict files),
into a fresh copy of the course, the pages by nbconvert's own HTMLExporter:
the gradebook's rows, ``nbgrader export``, the autograded notebooks and the
feedback pages must be the same.
"""
import contextlib
import copy
import csv
import io
import os
import shutil
import time

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.preprocessors import CheckCellMetadata

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade import recording
from autograder.grade.batch import grade
from autograder.grade.metadata import CheckCellMetadataOnce
from autograder.grade.nbgrader_cli import nbgrader
from autograder.grade.sandbox.pool import Limits, bwrap_available

needs_sandbox = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                   reason="bubblewrap is needed for sandboxed grading")
LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=3 << 30)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(course graded with three recorders, the same verdicts recorded by one nbgrader round, recorders started,
    what the batch said on stderr)."""
    root = tmp_path_factory.mktemp("recording")
    template = prepare_course(root / "template")
    inbox = root / "inbox"
    inbox.mkdir()
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    for student, path in samples("resnet18", course.SAMPLES).items():
        nbformat.write(fill(release, read_answers(path)), inbox / f"{student}.ipynb")
    started = []
    original = recording.Recorders._add

    def counted(self):  # how many recorder processes the batch really started
        original(self)
        started.append(self.count)

    recording.Recorders._add = counted
    new = shutil.copytree(template, root / "new")
    (new / "gradebook.db").unlink()  # a fresh course: the batch sets up the gradebook itself
    try:
        with contextlib.redirect_stderr(io.StringIO()) as said:
            rows = grade("resnet18", [str(inbox)], course_dir=new, limits=LIMITS, progress=False, recorders=3)
    finally:
        recording.Recorders._add = original
    assert {r["status"] for r in rows} == {"graded"}, rows
    old = shutil.copytree(template, root / "old")
    shutil.copytree(new / "submitted", old / "submitted")
    verdicts = new / "grading" / "resnet18" / "verdicts"
    env = {"RESNET_VERDICTS": str(verdicts)}
    nbgrader(old, "autograde", "resnet18", env=env)
    # ... and the pages by nbconvert's own HTMLExporter (the course's is page_export.FeedbackPageExporter).
    nbgrader(old, "generate_feedback", "resnet18", "--GenerateFeedback.exporter_class=nbconvert.exporters.HTMLExporter",
             env=env)
    return new, old, max(started), said.getvalue()


def _rows(course_dir):
    """Every score, comment and flag nbgrader keeps for each submission (ids are random, so left out)."""
    table = {}
    with Gradebook(course.db_url(course_dir)) as gb:
        for submission in gb.assignment_submissions("resnet18"):
            nb = gb.find_submission_notebook("resnet18", "resnet18", submission.student.id)
            table[submission.student.id] = {
                "timestamp": submission.timestamp, "score": nb.score, "late": nb.late_submission_penalty,
                "flagged": nb.flagged, "needs_manual_grade": nb.needs_manual_grade,
                "grades": sorted((g.name, g.auto_score, g.manual_score, g.extra_credit, g.max_score,
                                  g.needs_manual_grade) for g in nb.grades),
                "comments": sorted((c.name, c.auto_comment, c.manual_comment) for c in nb.comments)}
    return table


def _export(course_dir):
    """nbgrader export's rows for resnet18 (the other course's gradebook also knows bottleneck)."""
    nbgrader(course_dir, "export", f"--to={course_dir / 'export.csv'}")
    with open(course_dir / "export.csv") as f:
        return sorted(tuple(row.values()) for row in csv.DictReader(f) if row["assignment"] == "resnet18")


@needs_sandbox
def test_the_batch_used_several_recorders_and_said_it_set_up_the_gradebook(both):
    assert both[2] >= 2
    assert "setting up the gradebook for resnet18" in both[3]


@needs_sandbox
def test_gradebook_rows_and_export_are_the_same(both):
    new, old = both[:2]
    rows = _rows(new)
    assert set(rows) == set(samples("resnet18", course.SAMPLES)) and any(r["score"] > 0 for r in rows.values())
    assert rows == _rows(old)
    assert _export(new) == _export(old)


@needs_sandbox
@pytest.mark.parametrize("folder", ["autograded", "feedback"])
def test_autograded_notebooks_and_feedback_pages_are_the_same(both, folder):
    new, old = both[:2]
    files = sorted(p.relative_to(old) for p in (old / folder).rglob("*") if p.is_file())
    assert len(files) >= len(samples("resnet18", course.SAMPLES))
    assert sorted(p.relative_to(new) for p in (new / folder).rglob("*") if p.is_file()) == files
    for path in files:
        assert (new / path).read_bytes() == (old / path).read_bytes(), path


@needs_sandbox
def test_the_graded_gradebook_is_in_wal_mode_and_whole_in_its_file(both):
    """WAL mode (gradebook.use_write_ahead_log), and once the batch is over everything is in
    gradebook.db itself (no -wal file left), so copying that one file copies every grade."""
    import sqlite3
    new = both[0]
    assert not (new / "gradebook.db-wal").exists()
    with contextlib.closing(sqlite3.connect(new / "gradebook.db")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_gradebook_another_program_is_reading_stays_in_its_mode_and_the_batch_goes_on(tmp_path):
    """Switching to WAL needs a moment when nobody reads the file (a formgrader may): otherwise
    use_write_ahead_log says it did not switch, and raises nothing."""
    import sqlite3
    from autograder.grade.gradebook import use_write_ahead_log
    path = tmp_path / "gradebook.db"
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute("CREATE TABLE grade (x)")
        setup.commit()
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM grade").fetchall()  # holds a read lock, as a long read would
        assert use_write_ahead_log(f"sqlite:///{path}") is False
    finally:
        reader.close()
    assert use_write_ahead_log(f"sqlite:///{path}") is True
    assert use_write_ahead_log("postgresql://nowhere/gradebook") is False  # nothing to do there


WAL_PRAGMAS = """
import sqlite3, sys
from sqlalchemy import text
from autograder.grade import record
from autograder.grade.gradebook import use_write_ahead_log
record._one_engine_per_database()
from nbgrader.api import Gradebook
for name in ("wal.db", "journal.db"):
    url = f"sqlite:///{sys.argv[1]}/{name}"
    if name == "wal.db":
        use_write_ahead_log(url)
    with Gradebook(url) as gb:
        print(name, gb.db.execute(text("PRAGMA journal_mode")).scalar(), gb.db.execute(text("PRAGMA synchronous")).scalar())
"""


def test_recorders_commit_without_a_sync_in_wal_mode_only(tmp_path):
    """synchronous=NORMAL (1) is safe in WAL mode only: a gradebook in rollback-journal mode keeps FULL (2)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", WAL_PRAGMAS, str(tmp_path)], capture_output=True, text=True,
                         check=True, cwd=course.ROOT).stdout.split()
    assert out == ["wal.db", "wal", "1", "journal.db", "delete", "2"]


def test_the_course_exporters_validate_once_after_the_last_preprocessor_and_still_refuse_an_invalid_notebook():
    """nbconvert's optimistic_validation, set in nbgrader_config.py for every exporter: the notebook is
    checked against its schema after the last preprocessor only, and one a preprocessor broke is refused."""
    from nbconvert.exporters import NotebookExporter
    from nbconvert.preprocessors import Preprocessor
    from traitlets.config.loader import PyFileConfigLoader
    from autograder.grade.page_export import FeedbackPageExporter

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course.ROOT)).load_config()
    assert FeedbackPageExporter(config=config).optimistic_validation  # the feedback pages' exporter too

    class Breaks(Preprocessor):
        def preprocess(self, nb, resources):
            nb.cells[0]["cell_type"] = "nonsense"
            return nb, resources

    class Mends(Preprocessor):
        def preprocess(self, nb, resources):
            nb.cells[0]["cell_type"] = "markdown"
            return nb, resources

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("text")])
    for preprocessors, refused in (([Breaks, Mends, Mends], False), ([Mends, Breaks], True)):
        exporter, checked = NotebookExporter(config=config), []
        original = exporter._validate_preprocessor
        exporter._validate_preprocessor = lambda nbc, p: (checked.append(type(p)), original(nbc, p))
        for preprocessor in preprocessors:
            exporter.register_preprocessor(preprocessor(), enabled=True)
        if refused:
            with pytest.raises(nbformat.ValidationError):
                exporter.from_notebook_node(copy.deepcopy(nb))
        else:
            exporter.from_notebook_node(copy.deepcopy(nb))
        assert checked == [preprocessors[-1]]


def _refusal(check, nb):
    try:
        check.preprocess(nb, {})
    except Exception as error:
        return type(error), str(error)
    return None


def test_the_metadata_check_refuses_what_nbgrader_refuses_after_passing_good_cells():
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    once, stock = CheckCellMetadataOnce(), CheckCellMetadata()
    for _ in range(2):  # the second time from what it remembers
        assert _refusal(once, copy.deepcopy(release)) is None
    graded = next(i for i, c in enumerate(release.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    spoilers = [lambda cells: cells[graded].metadata.nbgrader.pop("points"),
                lambda cells: cells[graded].metadata.nbgrader.update(grade_id=""),
                lambda cells: cells[graded].metadata.nbgrader.update(points="many"),
                lambda cells: cells[graded].metadata.nbgrader.update(schema_version=2),
                lambda cells: cells.append(copy.deepcopy(cells[graded]))]
    for spoil in spoilers:
        nb = copy.deepcopy(release)
        spoil(nb.cells)
        refused = _refusal(stock, copy.deepcopy(nb))
        assert refused is not None and _refusal(once, nb) == refused


@needs_sandbox
def test_a_recorder_killed_fails_one_submission_and_the_next_gets_a_new_recorder(both):
    course_dir = both[0]
    students = ["correct_reference", "relu_before_add"]
    for student in students:
        for folder in ("autograded", "feedback"):
            shutil.rmtree(course_dir / folder / student / "resnet18")
    recorders = recording.Recorders(course_dir, "resnet18", course_dir / "grading" / "resnet18" / "verdicts",
                                    course.db_url(course_dir), most=1)
    try:
        while recorders._workers[0][0][0] is None:  # forked by its thread once the zygote is warm
            time.sleep(0.05)
        recorders._workers[0][0][0].kill()  # the recorder process, as an out-of-memory kill would
        for student in students:
            recorders.record(student)
        recorders.wait()
    finally:
        recorders.close()
    assert recorders.failed == students[:1] and [t[0] for t in recorders.timings] == students[1:]
    assert (course_dir / "feedback" / students[1] / "resnet18" / "resnet18.html").exists()
    assert not (course_dir / "feedback" / students[0] / "resnet18").exists()
