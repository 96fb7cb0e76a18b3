"""The batch grader over several runs: results add up, re-mapped ids go, re-runs skip, LMS files.

One small course is graded in four runs, in order (a module fixture each,
about 10 s apiece): a first folder, a second folder, the second again, then
the first with a roster; a Canvas export as roster gets its own course.
"""
import csv
import json
import os
import subprocess
import sys
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.assign.samples import fill, read_answers
from autograder.grade import batch
from autograder.grade.batch import grade
from autograder.grade.sandbox.pool import Limits, bwrap_available

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is needed for sandboxed grading")
LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=3 << 30)


def notebook(sample):
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    return fill(release, read_answers(course.SAMPLES / "resnet18" / f"{sample}.py"))


def run(course_dir, inbox, roster=None):
    return grade("resnet18", [str(inbox)], course_dir=course_dir, roster=roster, jobs=1, progress=False,
                 limits=LIMITS)


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    course_dir = prepare_course(root / "course")
    first, second = root / "first", root / "second"
    first.mkdir()
    second.mkdir()
    nbformat.write(notebook("correct_reference"), first / "alice_resnet18.ipynb")
    nbformat.write(notebook("relu_before_add"), first / "bob_resnet18.ipynb")
    (first / "empty.ipynb").write_text("")
    nbformat.write(notebook("correct_styled"), second / "carol.ipynb")
    roster = root / "roster.csv"
    roster.write_text("student_id,match\ns001,alice\ns002,bob\ns004,dave\n")
    results = {"course": course_dir, "first": run(course_dir, first)}
    results["grades_after_one"] = csv_rows(course_dir / "grading" / "resnet18" / "grades.csv")
    results["second"] = run(course_dir, second)
    results["grades_after_two"] = csv_rows(course_dir / "grading" / "resnet18" / "grades.csv")
    return dict(results, roster=roster, first_dir=first, second_dir=second)


def test_grades_csv_covers_every_run_and_each_run_keeps_its_rows(runs):
    first = {r["student_id"]: r for r in runs["grades_after_one"]}
    assert (first["empty"]["status"], first["empty"]["score"], first["empty"]["residual /35"]) == ("unusable", "", "")
    grades = {r["student_id"]: r for r in runs["grades_after_two"]}
    # The unusable file was a row of its own run, not a student of every later one.
    assert sorted(grades) == ["alice", "bob", "carol"]
    assert (grades["alice"]["score"], grades["carol"]["score"], grades["bob"]["score"]) == ("100", "100", "73")
    files = sorted((runs["course"] / "grading" / "resnet18" / "runs").glob("*.csv"))
    assert [sorted(r["student_id"] for r in csv_rows(f)) for f in files[:2]] == [["alice", "bob", "empty"],
                                                                                 ["carol"]]
    assert [r["student_id"] for r in runs["second"]] == ["carol"]


def test_the_gradebook_has_the_indexes_recording_needs(runs):
    """Each student's grades are loaded by notebook: an index serves that, not a scan of every grade."""
    import sqlite3
    from autograder.grade.gradebook import INDEXES
    with sqlite3.connect(runs["course"] / "gradebook.db") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        plan = " ".join(str(row) for row in connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM grade WHERE notebook_id = 'x'"))
    assert set(INDEXES) <= names
    assert "autograder_ix_grade_notebook" in plan, plan


def test_rerun_says_unchanged_and_starts_no_work(runs, monkeypatch):
    def no_sandbox(*args, **kwargs):
        raise AssertionError("the sandbox was started for unchanged submissions")
    monkeypatch.setattr(batch, "Pool", no_sandbox)
    monkeypatch.setattr(batch, "restore_entries", lambda entries, *a: [] if not entries else no_sandbox())
    rows = run(runs["course"], runs["second_dir"])
    assert rows.messages[0] == "1 unchanged, skipped (--force regrades them)"
    assert [(r["student_id"], r["score"], r["this_run"]) for r in rows] == [("carol", "100", "unchanged, skipped")]


def test_roster_remaps_ids_without_ghosts_and_reports_missing_students(runs):
    rows = run(runs["course"], runs["first_dir"], roster=runs["roster"])
    by_id = {r["student_id"]: r for r in rows}
    assert sorted(by_id) == ["empty", "s001", "s002", "s004"]
    assert by_id["s004"]["status"] == "missing" and by_id["s001"]["score"] == "100"
    assert any("removed alice" in m for m in rows.messages) and any("removed bob" in m for m in rows.messages)
    with Gradebook(f"sqlite:///{runs['course'] / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == ["carol", "s001", "s002"]
    for folder in ("submitted", "autograded", "feedback"):
        assert not (runs["course"] / folder / "alice").exists()
    grades = {r["student_id"]: r["status"] for r in csv_rows(runs["course"] / "grading" / "resnet18" / "grades.csv")}
    assert grades == {"carol": "graded", "empty": "unusable", "s001": "graded", "s002": "graded", "s004": "missing"}
    scores = {r["student_id"]: r["score"] for r in csv_rows(runs["course"] / "grading" / "resnet18" / "scores.csv")}
    assert scores == {"carol": "100", "empty": "", "s001": "100", "s002": "73", "s004": ""}
    assert any("no score" in m and "empty (unusable)" in m and "s004 (missing)" in m for m in rows.messages)


CANVAS_EXPORT = """Student,ID,SIS User ID,SIS Login ID,Section,resnet18 (5501),bottleneck (5502),Current Score
    Points Possible,,,,,10,10,(read only)
"Doe, Jane",111,S111,jdoe@uni.example,Sec 1,,,
"Lee, Ann",222,S222,alee@uni.example,Sec 1,,,
"Kim, Max",333,S333,,Sec 2,,,
"""


def test_canvas_export_as_roster_gives_a_canvas_import(tmp_path):
    course_dir = prepare_course(tmp_path / "course")
    inbox = tmp_path / "canvas"
    inbox.mkdir()
    nbformat.write(notebook("relu_before_add"), inbox / "doejane_111_9001_resnet18.ipynb")
    (inbox / "leeann_LATE_222_9002_resnet18.ipynb").write_text('{"cells": [')
    roster = tmp_path / "export.csv"
    roster.write_text(CANVAS_EXPORT)
    rows = run(course_dir, inbox, roster=roster)
    assert sorted((r["student_id"], r["status"]) for r in rows) == [
        ("S333", "missing"), ("alee", "unusable"), ("jdoe", "graded")]
    imported = csv_rows(course_dir / "grading" / "resnet18" / "canvas_import.csv")
    assert imported == [
        {"Student": "Doe, Jane", "ID": "111", "SIS User ID": "S111", "SIS Login ID": "jdoe@uni.example",
         "Section": "Sec 1", "resnet18 (5501)": "7.3"},
        {"Student": "Lee, Ann", "ID": "222", "SIS User ID": "S222", "SIS Login ID": "alee@uni.example",
         "Section": "Sec 1", "resnet18 (5501)": ""},
        {"Student": "Kim, Max", "ID": "333", "SIS User ID": "S333", "SIS Login ID": "", "Section": "Sec 2",
         "resnet18 (5501)": ""}]
    assert any("canvas_import.csv" in m and "out of 10" in m for m in rows.messages)
    assert any("alee (unusable)" in m and "S333 (missing)" in m for m in rows.messages)


def test_the_command_by_its_full_path_writes_no_formula_and_counts_a_rerun(tmp_path):
    """``.venv/bin/python -m autograder grade`` without the environment activated (nbgrader needs its
    ``alembic`` script for a new gradebook), a file named as a spreadsheet formula and given by its bare
    name next to a control, then a rerun of the control alone."""
    course_dir = prepare_course(tmp_path / "course")
    (course_dir / "gradebook.db").unlink()   # as in a fresh clone: the grader makes the gradebook
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    formula = '=HYPERLINK("evil.example","CLICK").ipynb'
    nbformat.write(notebook("correct_reference"), inbox / formula)
    nbformat.write(notebook("relu_before_add"), inbox / "alice.ipynb")
    env = dict(os.environ, PATH="/usr/bin:/bin")
    env.pop("VIRTUAL_ENV", None)

    def command(*files):
        return subprocess.run([sys.executable, "-m", "autograder", "grade", "resnet18", *files,
                               "--course-dir", str(course_dir), "--jobs", "1", "--no-progress", "--timeout", "60"],
                              cwd=inbox, env=env, capture_output=True, text=True, timeout=600)

    done = command(formula, "alice.ipynb")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 files: 2 graded, 0 unchanged (skipped), 0 not gradable" in done.stdout
    work = course_dir / "grading" / "resnet18"
    for path in [work / "grades.csv", work / "scores.csv", *(work / "runs").glob("*.csv")]:
        for row in csv.reader(open(path, newline="")):
            assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), (path, row)
    by_input = {r["input"]: r for r in csv_rows(next((work / "runs").glob("*.csv")))}
    assert by_input["'" + formula]["score"] == "100" and by_input["alice.ipynb"]["score"] == "73"
    done = command("alice.ipynb")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 files: 0 graded, 1 unchanged (skipped), 0 not gradable" in done.stdout
    with open(work / "grades.csv", newline="") as f:
        header = next(csv.reader(f))
    parts = [f"{p} /{m:g}" for p, m in course.max_scores("resnet18").items()]
    assert header == ["input", "student_id", "status", "score", "max_score", *parts, "notes"]



def test_the_grader_judges_real_submissions_without_importing_mxnet(tmp_path):
    """Judges compare numbers: the grader's own process never imports MXNet (the checks name its
    modules lazily, ``autograder/student/lazy_mxnet.py``), yet grades correct answers fully and a
    mistake partly, for both assignments."""
    course_dir = prepare_course(tmp_path / "course")
    inbox = {}
    for assignment, wrong in (("resnet18", "relu_before_add"), ("bottleneck", "relu_before_add")):
        inbox[assignment] = tmp_path / assignment
        inbox[assignment].mkdir()
        release = nbformat.read(course.RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
        for sample in ("correct_reference", wrong):
            nb = fill(release, read_answers(course.SAMPLES / assignment / f"{sample}.py"))
            nbformat.write(nb, inbox[assignment] / f"{sample}_{assignment}.ipynb")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from autograder.grade.batch import grade\n"
        "scores = {}\n"
        "for assignment, inbox in json.loads(sys.argv[2]).items():\n"
        "    for row in grade(assignment, [inbox], course_dir=sys.argv[1], progress=False):\n"
        "        scores[Path(row['input']).stem] = row['score']\n"
        "print(json.dumps({'scores': scores, 'mxnet': 'mxnet' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(course_dir),
                           json.dumps({a: str(p) for a, p in inbox.items()})],
                          capture_output=True, text=True, cwd=course.ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said["mxnet"] is False
    assert len(said["scores"]) == 4, said
    for stem, score in said["scores"].items():
        sample, assignment = stem.rsplit("_", 1)
        expected = json.loads((course.SAMPLES / assignment / "expected_scores.json").read_text())[sample]
        assert float(score) == sum(expected.values()), (stem, score)


def test_notebooks_run_while_later_files_are_restored(tmp_path, monkeypatch):
    """Intake restores in the background and each notebook runs as soon as it is restored: here the
    second file's restoring waits until the first file's verdict has been judged and handed over,
    which only happens if the first one ran while the second was still being restored."""
    from autograder.grade import intake

    course_dir = prepare_course(tmp_path / "course")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    nbformat.write(notebook("relu_before_add"), inbox / "a_first.ipynb")
    nbformat.write(notebook("correct_reference"), inbox / "b_waits.ipynb")
    verdict = course_dir / "grading" / "resnet18" / "verdicts" / "a_first.json"
    restore, waited = intake.restore_limited_as_text, []

    def waits_for_a(path, *args, **kwargs):
        if "b_waits" in str(path):
            for _ in range(1200):  # at most 2 minutes, then it goes on (and the test fails below)
                if verdict.exists():
                    waited.append(True)
                    break
                time.sleep(0.1)
        return restore(path, *args, **kwargs)

    monkeypatch.setattr(intake, "restore_limited_as_text", waits_for_a)
    rows = {r["student_id"]: r for r in grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=1,
                                                progress=False, limits=LIMITS)}
    assert waited == [True], "the first notebook did not run while the second file was being restored"
    assert rows["b_waits"]["score"] == "100" and rows["a_first"]["status"] == "graded"
    assert float(rows["a_first"]["score"]) < 100
