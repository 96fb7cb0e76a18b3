"""Benchmark: the local pool vs a Dask cluster on one machine, and a projection for more workers.

Usage: python bench/grade_dask_vs_local.py [--count 24] [--workers N]

Starts a Dask scheduler and ``workers`` single-threaded ``dask worker``
processes on loopback (default: one per core), builds ``count`` submissions
of the ResNet-18 assignment (the bundled samples, repeated), then, side by
side in this one run:

1. the whole ``python -m autograder grade`` (intake, sandboxed runs, judging,
   nbgrader's recording and feedback), once with the local pool and once
   with ``--scheduler``, each in a fresh course directory; the cluster's
   timing includes its workers' warm-up, as the local one does;
2. the sandboxed runs alone, through the same pool interface
   (``Pool.run`` / ``DaskPool.run``, warm, ``workers`` in flight): the part
   that moves to the cluster, and where its overhead would show;
3. the instructor's own work per submission, which stays on one machine:
   judging the observations, and nbgrader recording the verdicts and
   writing feedback (one warm recorder process, measured alone).

The projection divides the measured cost of a run on one worker by the
number of workers, and caps the throughput at what the instructor's
machine can judge and record (one recorder per core).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder import course  # noqa: E402
from autograder.assign.demo import prepare_course  # noqa: E402
from autograder.assign.samples import fill, read_answers, samples  # noqa: E402
from autograder.grade import batch, trusted  # noqa: E402
from autograder.grade.cluster import DaskPool  # noqa: E402
from autograder.grade.recording import Recorders  # noqa: E402
from autograder.grade.sandbox.pool import Limits, Pool  # noqa: E402

DASK = str(Path(sys.executable).with_name("dask"))


def start_cluster(folder, workers):
    """A scheduler and ``workers`` single-threaded workers on loopback: (address, processes)."""
    env = dict(os.environ, PYTHONPATH=str(course.ROOT))
    log = open(folder / "cluster.log", "ab")
    spawn = lambda *args: subprocess.Popen([DASK, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    file = folder / "scheduler.json"
    processes = [spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", str(file))]
    processes += [spawn("worker", "--scheduler-file", str(file), "--host", "127.0.0.1", "--nthreads", "1",
                        "--no-dashboard") for _ in range(workers)]
    while not file.exists():
        time.sleep(0.2)
    from distributed import Client
    address = json.loads(file.read_text())["address"]
    with Client(address) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, processes


def whole_batch(root, name, inbox, **options):
    course_dir = prepare_course(root / name)
    start = time.perf_counter()
    rows = batch.grade("resnet18", [str(inbox)], course_dir=course_dir, progress=False, **options)
    elapsed = time.perf_counter() - start
    assert all(r["status"] == "graded" for r in rows), rows
    return elapsed, {r["student_id"]: r["score"] for r in rows}, course_dir


def runs_only(pool, jobs, in_flight):
    """Seconds to run every job through a started pool, ``in_flight`` at a time; and the outcomes."""
    start = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as threads:
        outcomes = list(threads.map(pool.run, jobs))
    return time.perf_counter() - start, outcomes


def recording(course_dir):
    """Seconds of one warm recorder (nbgrader autograde + generate_feedback) per submission, recording the
    course's verdicts again."""
    verdicts = course_dir / "grading" / "resnet18" / "verdicts"
    students = sorted(p.stem for p in verdicts.glob("*.json"))
    for folder in ("autograded", "feedback"):
        shutil.rmtree(course_dir / folder)
    recorders = Recorders(course_dir, "resnet18", verdicts, course.db_url(course_dir), most=1)
    recorders.record(students[0])  # the first pays nbgrader's start
    recorders.wait()
    start = time.perf_counter()
    for student in students[1:]:
        recorders.record(student)
    recorders.wait()
    elapsed = time.perf_counter() - start
    recorders.close()
    return elapsed / (len(students) - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    n, w = args.count, args.workers
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    answers = [read_answers(p) for p in samples("resnet18", course.SAMPLES).values()]
    notebooks = [fill(release, answers[i % len(answers)]) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inbox = root / "inbox"
        inbox.mkdir()
        for i, nb in enumerate(notebooks):
            nbformat.write(nb, inbox / f"student{i:03d}.ipynb")
        address, processes = start_cluster(root, w)
        try:
            t_local, local_scores, local_course = whole_batch(root, "local", inbox, jobs=w)
            t_dask, dask_scores, _ = whole_batch(root, "dask", inbox, scheduler=address)
            assert local_scores == dask_scores, "the cluster's scores differ from the local ones"

            calls, challenges = trusted.plan("resnet18"), trusted.draw_challenges("resnet18")
            jobs = [trusted.job(nb, "resnet18", calls, challenges, Limits()) for nb in notebooks]
            with Pool(w) as pool:
                r_local, outcomes = runs_only(pool, jobs, w)
            with DaskPool(address) as pool:
                r_dask, _ = runs_only(pool, jobs, w)
            start = time.perf_counter()
            for nb, job, outcome in zip(notebooks, jobs, outcomes):
                trusted.verdicts(nb, "resnet18", job, outcome)
            judging = (time.perf_counter() - start) / n
            record = recording(local_course)
        finally:
            for process in processes:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    print(f"{n} submissions, {os.cpu_count()} cores; local pool of {w} workers vs a Dask scheduler "
          f"+ {w} single-threaded workers on loopback")
    print(f"whole grade, local pool:     {t_local:6.1f} s  {n / t_local * 60:6.1f} submissions/min")
    print(f"whole grade, Dask cluster:   {t_dask:6.1f} s  {n / t_dask * 60:6.1f} submissions/min"
          f"  (ratio {t_local / t_dask:.2f})")
    print(f"sandboxed runs only, local:  {r_local:6.1f} s  {n / r_local * 60:6.1f} submissions/min")
    print(f"sandboxed runs only, Dask:   {r_dask:6.1f} s  {n / r_dask * 60:6.1f} submissions/min"
          f"  (ratio {r_local / r_dask:.2f})")
    cost = r_dask * w / n   # seconds of one worker per submission, Dask's overhead included
    cores = os.cpu_count()
    # the judge (threads of this process) and the recorders (one process per core) overlap
    instructor = max(judging, record / cores)
    print(f"per submission: {cost:.2f} s on a worker; on the instructor's machine {judging:.3f} s judging, "
          f"{record:.2f} s in a recorder (nbgrader), {cores} recorders")
    print("projection (workers like these cores, one thread each; intake and start-up not counted; "
          f"the instructor's judging serial, one recorder per core of the instructor's {cores}; "
          "bench/recording.py has every stage):")
    print("  workers  submissions/min  1000 submissions")
    for workers in (1, 2, 4, 8, 16, 32, 64, 128):
        rate = 1 / max(cost / workers, instructor)
        print(f"  {workers:7d}  {rate * 60:15.0f}  {1000 / rate / 60:13.1f} min"
              + ("   (the instructor's machine is the limit)" if cost / workers < instructor else ""))


if __name__ == "__main__":
    main()
