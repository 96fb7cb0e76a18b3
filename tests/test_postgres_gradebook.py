"""The gradebook in a real PostgreSQL server, started on loopback for this module.

The server (``tests/postgres_server.py``, shared with the benches) runs from
Debian's ``postgresql`` package in a temporary data directory and is stopped
afterwards. A batch is recorded into it through the
course's configured ``db_url`` and read back with ``nbgrader export``; two
graders record into one gradebook at the same time and lose nothing.
"""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade.batch import grade
from autograder.grade.gradebook import INDEXES
from autograder.grade.nbgrader_cli import nbgrader
from autograder.grade.sandbox.pool import Limits, bwrap_available
from tests.postgres_server import BIN, running

needs_postgres = pytest.mark.skipif(BIN is None, reason="the PostgreSQL server (initdb, pg_ctl) is not installed: "
                                                        "apt-get install postgresql, or run scripts/env.sh as root")
needs_sandbox = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                   reason="bubblewrap is needed for sandboxed grading")
LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=3 << 30)
EXPECTED = {"blank": 0, "correct_reference": 100, "correct_styled": 100}


@pytest.fixture(scope="module")
def server():
    """A function that creates a fresh database on a private server and returns its URL."""
    with running() as database:
        yield database


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A function that makes a fresh course directory (a copy of one prepared once: nbgrader is slow to start)."""
    template = prepare_course(tmp_path_factory.mktemp("template") / "course")
    return lambda target: Path(shutil.copytree(template, target))


def _inbox(folder, prefix, students):
    folder.mkdir()
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    for student in students:
        path = samples("resnet18", course.SAMPLES)[student]
        nbformat.write(fill(release, read_answers(path)), folder / f"{prefix}{student}.ipynb")
    return folder


def _exported(course_dir, url=None):
    """{student: score} from nbgrader export, run in the course directory as an instructor would."""
    nbgrader(course_dir, "export", f"--to={course_dir / 'export.csv'}",
             *([f"--CourseDirectory.db_url={url}"] if url else []))
    with open(course_dir / "export.csv") as f:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}


def test_the_configured_db_url_is_honoured(tmp_path):
    assert course.db_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/gradebook.db"  # nbgrader's default
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.db_url = "sqlite:////srv/g.db"\n')
    assert course.db_url(tmp_path) == "sqlite:////srv/g.db"
    assert course.db_url(tmp_path, "postgresql://grader@db/resnet") == "postgresql://grader@db/resnet"


@needs_postgres
@needs_sandbox
def test_a_batch_is_recorded_into_the_configured_database(tmp_path, server, course_copy):
    url = server("course")
    course_dir = course_copy(tmp_path / "course")
    (course_dir / "gradebook.db").unlink()  # from prepare_course's generate_assignment
    with open(course_dir / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {url!r}\n")
    assert course.db_url(course_dir) == url
    rows = grade("resnet18", [str(_inbox(tmp_path / "inbox", "", EXPECTED))], course_dir=course_dir, jobs=2,
                 progress=False, limits=LIMITS)
    assert {r["student_id"]: float(r["score"]) for r in rows} == EXPECTED
    assert _exported(course_dir) == EXPECTED
    assert not (course_dir / "gradebook.db").exists()
    # Each student's grades are loaded by notebook: an index serves that, not a scan of every grade.
    import psycopg
    with psycopg.connect(url) as connection:
        names = {row[0] for row in connection.execute("SELECT indexname FROM pg_indexes")}
        assert set(INDEXES) <= names
        connection.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in connection.execute("EXPLAIN SELECT * FROM grade WHERE notebook_id = 'x'"))
        assert "autograder_ix_grade_notebook" in plan, plan


@needs_postgres
@needs_sandbox
def test_two_graders_record_into_one_database_at_the_same_time(tmp_path, server, course_copy):
    url = server("shared")
    graders = []
    for grader in ("instructor", "ta"):
        course_dir = course_copy(tmp_path / grader)
        inbox = _inbox(tmp_path / f"inbox-{grader}", f"{grader}_", EXPECTED)
        graders.append((course_dir, subprocess.Popen(
            [sys.executable, "-m", "autograder", "grade", "resnet18", str(inbox), "--course-dir", str(course_dir),
             "--db-url", url, "--jobs", "1", "--timeout", "60", "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONPATH=str(course.ROOT)))))
    for _, process in graders:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output
    expected = {f"{grader}_{student}": score for grader in ("instructor", "ta") for student, score in EXPECTED.items()}
    assert _exported(graders[1][0], url) == expected
    for course_dir, _ in graders:  # --db-url won over the course's own (SQLite) gradebook
        with Gradebook(course.db_url(course_dir)) as gb:
            assert gb.assignment_submissions("resnet18") == []
