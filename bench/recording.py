"""Benchmark: each stage's throughput with 1 and 2 recorders, and a projection for a cluster.

Usage: python bench/recording.py [--count 24] [--jobs N] [--instructor-cores N]

Builds ``count`` submissions of the ResNet-18 assignment (the bundled samples,
repeated), then, side by side in this one run:

1. grades them with ``python -m autograder grade``'s function, once with at
   most 1 recorder and once with at most 2, each in a fresh course directory,
   timing every stage as it runs (``stages.py``);
2. records the same verdicts again, recording alone, into fresh copies of the
   course with 1 and then 2 recorders (started and warm before the clock
   starts), into the SQLite gradebook (its writes taken in turn) and into a
   real PostgreSQL server on loopback (``tests/postgres_server.py``; the
   recorders write at the same time), and prints each one's throughput;
3. projects from the measured per-stage costs the minutes for 300, 1,000 and
   10,000 submissions on 1 to 128 workers like these cores, with the
   instructor's machine (``--instructor-cores``, default this machine's)
   running one recorder per core into PostgreSQL, and names the stage that
   limits each row. Start-up is not counted.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograder import course  # noqa: E402
from autograder.assign.demo import prepare_course  # noqa: E402
from autograder.grade import batch  # noqa: E402
from autograder.grade.recording import Recorders  # noqa: E402
from grade_vs_nbgrader import make_submissions  # noqa: E402
from stages import Stages  # noqa: E402
from tests.postgres_server import BIN, running  # noqa: E402


def whole_batch(template, course_dir, inbox, count, jobs, recorders):
    course_dir = Path(shutil.copytree(template, course_dir))
    stages = Stages()
    with stages.watching():
        rows = batch.grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=jobs, progress=False,
                           recorders=recorders)
    assert all(r["status"] == "graded" for r in rows), rows
    return course_dir, stages


def recording_alone(template, graded, course_dir, db_url, count):
    """(submissions/min, s of autograde, s of feedback per submission) for ``count`` warm recorders."""
    course_dir = Path(shutil.copytree(template, course_dir))
    shutil.copytree(graded / "submitted", course_dir / "submitted")
    verdicts = graded / "grading" / "resnet18" / "verdicts"
    db_url = db_url or course.db_url(course_dir)
    batch._ensure_assignment(course_dir, "resnet18", db_url)
    students = sorted(p.stem for p in verdicts.glob("*.json"))
    recorders = Recorders(course_dir, "resnet18", verdicts, db_url, most=count)
    try:
        for student in students[:count]:  # one each: every recorder started, nbgrader imported and warm
            recorders.record(student)
        recorders.wait()
        start = time.perf_counter()
        for student in students[count:]:
            recorders.record(student)
        recorders.wait()
        elapsed = time.perf_counter() - start
    finally:
        recorders.close()
    assert not recorders.failed and recorders.count == count, (recorders.failed, recorders.count)
    timed = [t for t in recorders.timings if t[0] in students[count:]]
    n = len(timed)
    return n / elapsed * 60, sum(t[1] for t in timed) / n, sum(t[2] for t in timed) / n


def projection(per, record_cost, cores):
    """Lines of the projection table from per-submission costs (seconds)."""
    serial = per["intake"] + per["judging"] + per["handing_over"]
    lines = [f"projection: workers like these cores (one thread each), the instructor's machine with {cores} "
             f"cores: one recorder per core into PostgreSQL ({record_cost:.3f} s each per submission), "
             f"intake + judging + handing over serial in the grader's process ({serial:.3f} s); start-up not "
             "counted",
             "  workers  submissions/min      300     1000    10000  limited by"]
    for workers in (1, 2, 4, 8, 16, 32, 64, 128):
        rates = {"the sandboxed runs (workers)": workers / per["run"],
                 "the instructor's serial work (intake, judging, handing over)": 1 / serial,
                 "recording and feedback (recorders)": cores / record_cost}
        limit = min(rates, key=rates.get)
        rate = rates[limit]
        minutes = [f"{n / rate / 60:6.1f} m" for n in (300, 1000, 10000)]
        lines.append(f"  {workers:7d}  {rate * 60:15.0f}  {'  '.join(minutes)}  {limit}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--instructor-cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    n = args.count
    out = [f"{n} submissions, {os.cpu_count()} cores, {args.jobs} workers"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template = prepare_course(root / "template")
        inbox = root / "inbox"
        inbox.mkdir()
        for student, nb in make_submissions(n).items():
            nbformat.write(nb, inbox / f"{student}.ipynb")
        graded = None
        for recorders in (1, 2):
            course_dir, stages = whole_batch(template, root / f"batch{recorders}", inbox, n, args.jobs, recorders)
            graded = graded or course_dir
            wall = stages.per_submission(n)["wall"] * n
            out.append(f"python -m autograder grade, at most {recorders} recorder(s): {wall:6.1f} s  "
                       f"{n / wall * 60:6.1f} submissions/min")
            out += stages.report(n)
        per = stages.per_submission(n)
        out.append("each stage alone (submissions/min): sandboxed runs "
                   f"{60 / per['run']:.0f} per worker; intake {60 / per['intake']:.0f}, judging "
                   f"{60 / per['judging']:.0f}, handing over {60 / per['handing_over']:.0f} (the grader's process)")
        with running() if BIN else nullcontext() as server:
            costs = {}
            for name, database in [("SQLite", None)] + ([("PostgreSQL", server)] if BIN else []):
                for count in (1, 2):
                    url = database(f"recorders{count}") if database else None
                    rate, autograde, feedback = recording_alone(template, graded, root / f"{name}{count}", url,
                                                                count)
                    costs.setdefault(name, autograde + feedback)  # one recorder's cost, with no one to wait for
                    out.append(f"recording alone, {name}, {count} recorder(s): {rate:6.1f} submissions/min  "
                               f"(per submission {autograde:.3f} s autograde + {feedback:.3f} s feedback "
                               "in each recorder)")
        out += projection(per, costs.get("PostgreSQL", costs["SQLite"]), args.instructor_cores)
    print("\n".join(out))


if __name__ == "__main__":
    main()
