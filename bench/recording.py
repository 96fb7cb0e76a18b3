"""Benchmark: each stage's throughput, recording split over recorders and over a cluster's workers, and a projection.

Usage: python bench/recording.py [--count 24] [--jobs N] [--instructor-cores N] [--server-cores N]

Builds ``count`` submissions of the ResNet-18 assignment (the bundled samples,
repeated), then, side by side in this one run:

1. grades them with ``python -m autograder grade``'s function, once with at
   most 1 recorder and once with at most 2, each in a fresh course directory,
   timing every stage as it runs (``stages.py``);
2. records the same verdicts again, recording alone, into fresh copies of the
   course with 1 and then 2 recorders (started and warm before the clock
   starts), into the SQLite gradebook (its writes taken in turn) and into a
   real PostgreSQL server on loopback (``tests/postgres_server.py``; the
   recorders write at the same time), with the server's CPU per submission;
3. grades them on a Dask scheduler with ``jobs`` single-threaded workers on
   loopback into that PostgreSQL server, where the workers record
   (``cluster_recording.py``): the grader's own CPU per submission between
   the first run and the last recording (its serial share), the workers'
   recording and the server's CPU;
4. restores the files alone (intake's limited children, as many at a time as
   there are cores): core-seconds per file on the instructor's machine;
5. projects from those costs the minutes for 300, 1,000 and 10,000
   submissions on 1 to 128 workers like these cores (each running and
   recording its submissions), with the instructor's machine
   (``--instructor-cores``) restoring the files and the grader's one process
   doing its serial share, and the PostgreSQL server (``--server-cores``),
   and names the stage that limits each row. Start-up is not counted.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
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
from autograder.grade.cluster_recording import recorded_here  # noqa: E402
from grade_dask_vs_local import start_cluster  # noqa: E402
from tests.postgres_server import running  # noqa: E402


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


def cluster_batch(template, course_dir, inbox, address, database):
    """Grade ``inbox`` on the cluster at ``address`` into a fresh PostgreSQL gradebook (the workers record):
    (stages, {worker: recorded_here}, seconds of the server's CPU)."""
    from distributed import Client

    course_dir = Path(shutil.copytree(template, course_dir))
    url = database("cluster")
    stages = Stages()
    server = database.cpu_seconds()
    with stages.watching():
        rows = batch.grade("resnet18", [str(inbox)], course_dir=course_dir, progress=False, scheduler=address,
                           db_url=url)
    server = database.cpu_seconds() - server
    assert all(r["status"] == "graded" for r in rows), rows
    with Client(address) as client:
        recorded = client.run(recorded_here, url)
    return stages, recorded, server


def restoring_alone(template, inbox, folder, cores):
    """Core-seconds per file of restoring the files (children forked from the warm server, ``cores`` at a time)."""
    from autograder.grade.intake import collect, restore_entries

    entries = collect([str(inbox)], "resnet18", workdir=folder)
    restore_entries(entries[:cores], "resnet18", template)  # the restoring server started and warm
    start = time.perf_counter()
    restore_entries(entries, "resnet18", template)
    return (time.perf_counter() - start) * cores / len(entries)


def projection(worker_cost, grader, restoring, server, instructor_cores, server_cores):
    """Lines of the projection table from per-submission costs (seconds)."""
    lines = [f"projection: workers like these cores (one thread each) run and record ({worker_cost:.3f} s per "
             f"submission); the grader's process {grader * 1000:.0f} ms per submission; restoring "
             f"{restoring:.3f} core-s per file on the instructor's {instructor_cores} cores; the PostgreSQL "
             f"server {server * 1000:.0f} ms of CPU per submission on {server_cores} cores; start-up not counted",
             "  workers  submissions/min      300     1000    10000  limited by"]
    for workers in (1, 2, 4, 8, 16, 32, 64, 128):
        rates = {"the workers (sandboxed runs, recording and feedback)": workers / worker_cost,
                 "the grader's process (its serial work)": 1 / grader,
                 "restoring the files (the instructor's cores)": instructor_cores / restoring,
                 "the PostgreSQL server": server_cores / server}
        limit = min(rates, key=rates.get)
        rate = rates[limit]
        minutes = [f"{n / rate / 60:6.1f} m" for n in (300, 1000, 10000)]
        lines.append(f"  {workers:7d}  {rate * 60:15.0f}  {'  '.join(minutes)}  {limit}")
    for cores in (2, 4, 8):  # the gradebook's server is the one stage no worker adds to
        rate = min(128 / worker_cost, 1 / grader, instructor_cores / restoring, cores / server)
        lines.append(f"with a PostgreSQL server of {cores} such cores: 10,000 submissions on 128 workers in "
                     f"{10000 / rate / 60:.1f} min")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--instructor-cores", type=int, default=os.cpu_count())
    parser.add_argument("--server-cores", type=int, default=os.cpu_count())
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
        with running() as server:
            for name, database in (("SQLite", None), ("PostgreSQL", server)):
                for count in (1, 2):
                    url = database(f"recorders{count}") if database else None
                    cpu = server.cpu_seconds()
                    rate, autograde, feedback = recording_alone(template, graded, root / f"{name}{count}", url,
                                                                count)
                    cpu = (server.cpu_seconds() - cpu) / n
                    out.append(f"recording alone, {name}, {count} recorder(s): {rate:6.1f} submissions/min  "
                               f"(per submission {autograde:.3f} s autograde + {feedback:.3f} s feedback "
                               "in each recorder" + (f"; the server {cpu * 1000:.0f} ms of CPU)" if database else ")"))
            address, processes = start_cluster(root, args.jobs)
            try:
                stages, recorded, server_cpu = cluster_batch(template, root / "cluster", inbox, address, server)
            finally:
                for process in processes:
                    os.killpg(process.pid, signal.SIGKILL)
        wall = stages.per_submission(n)["wall"] * n
        count = sum(r["count"] for r in recorded.values())
        recording = sum(r["autograde"] + r["feedback"] for r in recorded.values()) / count
        grader = stages.grader_cpu(n)
        out.append(f"python -m autograder grade --scheduler (Dask, {args.jobs} single-threaded workers on loopback), "
                   f"PostgreSQL gradebook, the workers recording: {wall:6.1f} s  {n / wall * 60:6.1f} submissions/min")
        out.append("  recorded on the workers: " + ", ".join(f"{r['count']}" for r in recorded.values())
                   + f" submissions; per submission {recording:.3f} s of autograde + feedback there")
        out.append(f"  the grader's process: {grader * 1000:.0f} ms of CPU per submission between the first run "
                   "and the last recording (goal: at most 60 ms); the PostgreSQL server: "
                   f"{server_cpu / n * 1000:.0f} ms of CPU per submission")
        restoring = restoring_alone(template, inbox, root / "restoring", os.cpu_count())
        out.append(f"restoring alone: {restoring:.3f} core-s per file ({os.cpu_count()} at a time)")
        out += projection(per["run"] + recording, grader, restoring, server_cpu / n, args.instructor_cores,
                          args.server_cores)
    print("\n".join(out))


if __name__ == "__main__":
    main()
