"""The whole nbgrader lifecycle on the bundled sample submissions.

``python -m autograder demo`` makes a fresh course directory (default
``demo-output/``), generates the release with nbgrader, turns each file of
``samples/<assignment>/`` into a student's submission, then runs nbgrader's
own ``autograde``, ``generate_feedback`` and ``export``. It prints a score
table per student and part and writes ``grades.csv`` (nbgrader's export),
``part_scores.csv`` and the HTML feedback under ``feedback/``.
"""
import csv
import shutil
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from .. import course
from ..grade.nbgrader_cli import nbgrader
from ..grade.sandbox.pool import bwrap_available
from .samples import fill, read_answers, samples


def prepare_course(out):
    """A fresh course directory with the source, the config and a generated release."""
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(course.SOURCE, out / "source")
    shutil.copy(course.ROOT / "nbgrader_config.py", out)
    for assignment in course.assignments():
        nbgrader(out, "generate_assignment", assignment, "--force")
    return out


def submit_samples(out, assignment, samples_dir=course.SAMPLES):
    """Write each sample as ``submitted/<student>/<assignment>/<assignment>.ipynb``."""
    release = nbformat.read(out / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    students = []
    for student, path in samples(assignment, samples_dir).items():
        target = out / "submitted" / student / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill(release, read_answers(path)), target)
        students.append(student)
    return students


def part_scores(out, assignment):
    """{student: {part: score}} read from the gradebook nbgrader filled."""
    parts = course.parts_of(course.source_notebook(assignment))
    table = {}
    with Gradebook(course.db_url(out)) as gb:
        for submission in gb.assignment_submissions(assignment):
            notebook = gb.find_submission_notebook(assignment, assignment, submission.student.id)
            by_id = {grade.name: grade.score for grade in notebook.grades}
            table[submission.student.id] = {part: sum(by_id[g] for g in ids) for part, ids in parts}
    return table


def format_table(assignment, table):
    maxima = course.max_scores(assignment)
    parts = list(maxima)
    header = ["student"] + [f"{p} /{maxima[p]:g}" for p in parts] + [f"total /{sum(maxima.values()):g}"]
    rows = [[student] + [f"{scores[p]:g}" for p in parts] + [f"{sum(scores.values()):g}"]
            for student, scores in sorted(table.items())]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _progress(assignment, students, verbose):
    """A log-line handler for nbgrader autograde that says which sample is graded (when verbose)."""
    done = []

    def on_log(line):
        if verbose and "] Autograding " in line:
            done.append(line)
            student = Path(line.split("] Autograding ", 1)[1].strip()).parts[-3]
            print(f"  {assignment}: {len(done)}/{len(students)} {student}", flush=True)
    return on_log


def grade_samples(out, samples_dir=course.SAMPLES, assignments=None, verbose=False):
    """Autograde the samples of each assignment that has some; returns
    (course_dir, {assignment: {student: {part: score}}}).

    nbgrader autograde runs the course's trusted pipeline (nbgrader_config.py); without bubblewrap
    the samples, which are the course's own, are graded without the sandbox."""
    out = prepare_course(out)
    unsandboxed = [] if bwrap_available() else ["--TrustedExecute.sandbox=False"]
    if unsandboxed and verbose:
        print("bubblewrap is not installed: the bundled samples are graded without the sandbox.")
    results = {}
    for assignment in assignments or course.assignments():
        if not samples(assignment, samples_dir):
            continue
        students = submit_samples(out, assignment, samples_dir)
        for student in students:
            nbgrader(out, "db", "student", "add", student)
        nbgrader(out, "autograde", assignment, "--force", *unsandboxed,
                 on_log=_progress(assignment, students, verbose))
        nbgrader(out, "generate_feedback", assignment, "--force")
        results[assignment] = part_scores(out, assignment)
    nbgrader(out, "export", f"--to={out / 'grades.csv'}")
    return out, results


def write_part_scores(out, results):
    with open(out / "part_scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["assignment", "student", "part", "score", "max_score"])
        for assignment, table in results.items():
            maxima = course.max_scores(assignment)
            for student, scores in sorted(table.items()):
                for part, score in scores.items():
                    writer.writerow([assignment, student, part, score, maxima[part]])


def run_demo(out):
    print(f"Grading the sample submissions with nbgrader in {out}/ ...")
    out, results = grade_samples(out, verbose=True)
    write_part_scores(out, results)
    for assignment, table in results.items():
        print(f"\n{assignment}\n{format_table(assignment, table)}")
    print(f"\nWrote {out / 'grades.csv'} (nbgrader export), {out / 'part_scores.csv'}, "
          f"and HTML feedback in {out / 'feedback'}/<student>/<assignment>/.")
