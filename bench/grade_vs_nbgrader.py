"""Benchmark: the batch grader vs stock ``nbgrader autograde`` on the same submissions.

Usage: python bench/grade_vs_nbgrader.py [--count 24] [--jobs N] [--ours-runs 3]

Builds ``count`` submissions of the ResNet-18 assignment (the bundled samples,
repeated under different student ids, each answer cell starting with a comment of
its own), then grades them three times, side by
side in this one run, each in a fresh course directory:

* stock: ``nbgrader autograde resnet18`` with nbgrader's own preprocessors
  (the course's nbgrader_config.py replaced by a stock one: one Jupyter
  kernel per notebook, one notebook at a time, student code run as the
  instructor);
* ``nbgrader autograde resnet18`` with the course's config: the trusted
  pipeline, one notebook at a time on one warm sandbox worker;
* ours: ``python -m autograder grade`` (sandboxed warm workers, one per core).

Both timings include everything the command does (for ours: intake,
sandboxed runs, judging, nbgrader autograde of the verdicts and its
feedback), and ours is broken down per submission and stage as it runs
(``stages.py``). Stock ``generate_feedback`` is timed on its own, so the ratio is
printed against stock autograde alone and against autograde + feedback (the
same outputs as ours).

Ours grades the batch in about a tenth of stock's two minutes, so one run of
ours samples one moment of a machine whose speed drifts from minute to
minute (on the 2-core machine, by a fifth and more), while stock's figure
averages over its whole run. So ours runs ``--ours-runs`` times, each in a
fresh course directory: before stock autograde, after it and after the
trusted round; every run is printed with its ratio, and the ratios are those
of the median run.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograder import course  # noqa: E402
from autograder.assign.demo import prepare_course  # noqa: E402
from autograder.grade.batch import grade  # noqa: E402
from autograder.grade.nbgrader_cli import nbgrader  # noqa: E402
from autograder.assign.samples import fill, read_answers, samples  # noqa: E402
from stages import Stages  # noqa: E402


def make_submissions(count):
    """``count`` notebooks answered as the samples are, in turn; each student's answers start with a
    comment of their own, so no two students send the same cell text (as in a real class, where
    whatever the grader keeps per distinct cell helps with the release's cells only)."""
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    answers = [read_answers(p) for p in samples("resnet18", course.SAMPLES).values()]
    submissions = {}
    for i in range(count):
        student = f"student{i:03d}"
        own = {cell: f"# {student}'s answer\n{code}" for cell, code in answers[i % len(answers)].items()}
        submissions[student] = fill(release, own)
    return submissions


STOCK_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "resnet"
c.Execute.timeout = 120
"""


def plain_nbgrader(root, submissions, stock_config):
    """(autograde seconds, generate_feedback seconds) with plain ``nbgrader``."""
    course_dir = prepare_course(root / ("stock" if stock_config else "trusted"))
    if stock_config:
        (course_dir / "nbgrader_config.py").write_text(STOCK_CONFIG)
    for student, nb in submissions.items():
        target = course_dir / "submitted" / student / "resnet18" / "resnet18.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        nbgrader(course_dir, "db", "student", "add", student)
    start = time.perf_counter()
    nbgrader(course_dir, "autograde", "resnet18")
    autograde = time.perf_counter() - start
    nbgrader(course_dir, "generate_feedback", "resnet18")
    return autograde, time.perf_counter() - start - autograde


def ours(root, submissions, jobs):
    """(seconds, stages) of one batch, in a fresh course directory under ``root``."""
    course_dir = prepare_course(root / "course")
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for student, nb in submissions.items():
        nbformat.write(nb, inbox / f"{student}.ipynb")
    stages = Stages()
    start = time.perf_counter()
    with stages.watching():
        rows = grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=jobs, progress=False)
    elapsed = time.perf_counter() - start
    assert all(r["status"] == "graded" for r in rows), rows
    return elapsed, stages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--ours-runs", type=int, default=3,
                        help="times ours grades the batch, each in a fresh course: before stock autograde, "
                             "after it, and after the trusted round (default 3)")
    args = parser.parse_args()
    if args.ours_runs < 1 or args.count < 1:
        parser.error("--count and --ours-runs must be at least 1")
    submissions = make_submissions(args.count)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def ours_again():
            if len(runs) < args.ours_runs:
                runs.append(ours(root / f"ours-{len(runs)}", submissions, args.jobs))

        ours_again()
        t_stock, t_feedback = plain_nbgrader(root, submissions, stock_config=True)
        ours_again()
        t_trusted, _ = plain_nbgrader(root, submissions, stock_config=False)
        while len(runs) < args.ours_runs:
            ours_again()
    n = len(submissions)
    t_ours, stages = sorted(runs, key=lambda run: run[0])[(len(runs) - 1) // 2]  # the median run
    print(f"{n} submissions, {os.cpu_count()} cores, {args.jobs} workers")
    print(f"stock nbgrader autograde:          {t_stock:6.1f} s  ({t_stock / n:.2f} s per submission)")
    print(f"stock autograde + generate_feedback: {t_stock + t_feedback:4.1f} s")
    print(f"nbgrader autograde, course config (trusted): {t_trusted:4.1f} s  ({t_trusted / n:.2f} s per submission)")
    print(f"python -m autograder grade (with feedback), {len(runs)} runs: "
          + ", ".join(f"{t:.1f} s ({t_stock / t:.1f}x)" for t, _ in runs))
    print(f"  median run: {t_ours:4.1f} s  ({t_ours / n:.2f} s per submission)")
    print("\n".join(stages.report(n)))
    print(f"speed-up vs autograde: {t_stock / t_ours:.1f}x; "
          f"vs autograde + feedback: {(t_stock + t_feedback) / t_ours:.1f}x")


if __name__ == "__main__":
    main()
