"""Benchmark: the batch grader vs stock ``nbgrader autograde`` on the same submissions.

Usage: python bench/grade_vs_nbgrader.py [--count 24] [--jobs N]

Builds ``count`` submissions of the ResNet-18 assignment (the bundled samples,
repeated under different student ids), then grades them twice, side by side
in this one run, each in a fresh course directory:

* stock: ``nbgrader autograde resnet18`` (one Jupyter kernel per notebook,
  one notebook at a time, student code run as the instructor);
* ours: ``python -m autograder grade`` (sandboxed warm workers, one per core).

Both timings include everything the command does (for ours: intake,
sandboxed runs, judging, nbgrader autograde of the verdicts); ours also
writes feedback, which the stock timing leaves out. Prints seconds per
submission and the ratio.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder import course  # noqa: E402
from autograder.demo import prepare_course  # noqa: E402
from autograder.grade import grade  # noqa: E402
from autograder.nbgrader_cli import nbgrader  # noqa: E402
from autograder.samples import fill, read_answers, samples  # noqa: E402


def make_submissions(count):
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    answers = [read_answers(p) for p in samples("resnet18", course.SAMPLES).values()]
    return {f"student{i:03d}": fill(release, answers[i % len(answers)]) for i in range(count)}


def stock(root, submissions):
    course_dir = prepare_course(root / "stock")
    for student, nb in submissions.items():
        target = course_dir / "submitted" / student / "resnet18" / "resnet18.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        nbgrader(course_dir, "db", "student", "add", student)
    start = time.perf_counter()
    nbgrader(course_dir, "autograde", "resnet18")
    return time.perf_counter() - start


def ours(root, submissions, jobs):
    course_dir = prepare_course(root / "ours")
    inbox = root / "inbox"
    inbox.mkdir()
    for student, nb in submissions.items():
        nbformat.write(nb, inbox / f"{student}.ipynb")
    start = time.perf_counter()
    rows = grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=jobs, progress=False)
    elapsed = time.perf_counter() - start
    assert all(r["status"] == "graded" for r in rows), rows
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    submissions = make_submissions(args.count)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t_ours = ours(root, submissions, args.jobs)
        t_stock = stock(root, submissions)
    n = len(submissions)
    print(f"{n} submissions, {os.cpu_count()} cores, {args.jobs} workers")
    print(f"stock nbgrader autograde: {t_stock:7.1f} s  ({t_stock / n:.2f} s per submission)")
    print(f"python -m autograder grade: {t_ours:5.1f} s  ({t_ours / n:.2f} s per submission)")
    print(f"speed-up: {t_stock / t_ours:.1f}x")


if __name__ == "__main__":
    main()
