"""Grading on a real Dask cluster: a scheduler and two workers, separate processes on loopback.

The samples and the attack suite are graded locally and on the cluster, and
every per-part score must be the same; a worker killed mid-batch loses
nothing; a submission that kills every worker it is sent to gets a row
saying so; a worker whose stack differs from the grader's refuses.
The scheduler allows one failure per task (``allowed-failures``), so the
killer is stopped after two tries.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from distributed import Client

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade.batch import grade
from autograder.grade.cluster import DaskPool, SandboxPlugin, fingerprint
from autograder.grade.cluster_recording import recorded_here
from autograder.grade.recording import Recorders
from autograder.grade.sandbox.pool import bwrap_available
from tests.postgres_server import BIN, running
from test_batch_grading import EXPECTED_ATTACKS, LIMITS, _parts, _reference_answers, _release, write_samples_and_attacks
from test_postgres_gradebook import _exported

pytestmark = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                reason="bubblewrap is needed for sandboxed grading")

DASK = str(Path(sys.executable).with_name("dask"))
EXPECTED_SAMPLES = json.loads((course.SAMPLES / "resnet18" / "expected_scores.json").read_text())

# Without the sandbox, a notebook can reach the processes that run it: this one walks up its
# ancestors (its per-job helper, the warm worker) to the Dask worker and kills it, every time it
# runs. The worker is the nanny's child, started by multiprocessing's spawn (its command line does
# not name dask); killing the nanny instead would leave nothing to start a new worker.
KILLS_ITS_DASK_WORKER = """# %% parameter_counts
import os, signal
pid = os.getpid()
while pid > 1 and not any(word in open(f"/proc/{pid}/cmdline", "rb").read() for word in (b"multiprocessing", b"dask")):
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
if pid > 1:
    os.kill(pid, signal.SIGKILL)
"""


def _spawn(args, env, log):
    return subprocess.Popen([DASK, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=str(course.ROOT), DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
    file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "ab")
    processes = {"scheduler": _spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(file)], env, log)}
    for name in ("w1", "w2"):
        processes[name] = _spawn(["worker", "--scheduler-file", str(file), "--host", "127.0.0.1", "--nthreads", "1",
                                  "--no-dashboard", "--name", name], env, log)
    try:
        deadline = time.monotonic() + 90
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
        yield {"address": address, "processes": processes, "log": folder / "cluster.log"}
    finally:
        for process in processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
            process.wait()
        log.close()


def _inbox(root, count=1):
    """``count`` copies of the samples in a new folder."""
    inbox = root / f"inbox{count}"
    inbox.mkdir()
    release = _release()
    for copy in range(count):
        for student, path in samples("resnet18", course.SAMPLES).items():
            nbformat.write(fill(release, read_answers(path)), inbox / f"{student}_{copy}.ipynb")
    return inbox


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A function that makes a fresh course directory (a copy of one prepared once: nbgrader is slow to start)."""
    template = prepare_course(tmp_path_factory.mktemp("template") / "course")
    return lambda target: Path(shutil.copytree(template, target))


def _by_file(rows):
    return {Path(r["input"]).name: r for r in rows}


@pytest.fixture(scope="module")
def samples_and_attacks(tmp_path_factory, cluster, course_copy):
    """{"local": rows, "dask": rows, "inbox": folder, "dask_course": course directory} for the same inbox."""
    root = tmp_path_factory.mktemp("dask-batch")
    inbox = root / "inbox"
    inbox.mkdir()
    write_samples_and_attacks(inbox, root / "course-local", port=1)
    graded = {}
    for where, scheduler in (("local", None), ("dask", cluster["address"])):
        graded[f"{where}_course"] = course_dir = course_copy(root / f"course-{where}")
        graded[where] = _by_file(grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=2, progress=False,
                                       limits=LIMITS, scheduler=scheduler))
    graded["inbox"] = inbox
    return graded


def test_cluster_gives_the_local_scores_part_by_part(samples_and_attacks):
    local, dask = samples_and_attacks["local"], samples_and_attacks["dask"]
    assert sorted(dask) == sorted(local)
    assert len(local) == len(EXPECTED_SAMPLES) + len(EXPECTED_ATTACKS)
    for name in local:
        assert dask[name]["status"] == local[name]["status"] == "graded", name
        if name == "attack_memory_bomb.ipynb":  # where its last allocation fails varies (test_batch_grading)
            for rows in (local, dask):
                got = _parts(rows[name])
                assert all(got[p] <= s for p, s in EXPECTED_ATTACKS["memory_bomb"].items()) and got["residual"] == 35
        else:
            assert _parts(dask[name]) == _parts(local[name]), name
    for student, parts in EXPECTED_SAMPLES.items():
        assert _parts(dask[f"{student}.ipynb"]) == parts, student


def test_stopped_notebooks_say_why_on_the_cluster(samples_and_attacks):
    assert "ran out of time" in samples_and_attacks["dask"]["attack_infinite_loop.ipynb"]["notes"]
    # The sandboxed worker is its pid namespace's init: the notebook kills only the helper relaying
    # its own records, and stops itself there (as locally).
    assert "killed the process that grades it" in samples_and_attacks["dask"]["attack_kills_the_grader.ipynb"]["notes"]


def test_protocol_attacks_on_the_cluster(tmp_path, cluster, course_copy):
    """A few attacks of the protocol suite and their controls: the cluster's workers grade them as locally."""
    from test_protocol_attacks import CONTROLS, EXPECTED, FULL, SCORES, notebooks
    chosen = ("forge_before_probe", "deep_nesting", "sysv_shm")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, nb in notebooks().items():
        if any(name.split("_", 1)[1].startswith(attack) for attack in chosen):
            nbformat.write(nb, inbox / f"{name}.ipynb")
    rows = {Path(r["input"]).stem: r for r in grade("resnet18", [str(inbox)], course_dir=course_copy(tmp_path / "c"),
                                                    jobs=2, progress=False, limits=LIMITS,
                                                    scheduler=cluster["address"])}
    for name, row in rows.items():
        attack = next(a for a in chosen if name.split("_", 1)[1].startswith(a))
        if name.endswith("_report"):  # the notebook after a leftover attack: a correct one
            assert _parts(row) == FULL, name
        elif "_then_" in name:
            assert _parts(row) == SCORES[CONTROLS[name.rsplit("_then_", 1)[1]]], name
        else:
            assert _parts(row) == EXPECTED[attack], name
    assert len(rows) == 3 * len(chosen) + 1  # and sysv_shm's report


def test_a_rerun_on_the_cluster_skips_unchanged_submissions(samples_and_attacks, cluster):
    start = time.monotonic()
    rows = _by_file(grade("resnet18", [str(samples_and_attacks["inbox"])], progress=False, limits=LIMITS,
                          course_dir=samples_and_attacks["dask_course"], scheduler=cluster["address"]))
    assert time.monotonic() - start < 30  # the infinite loop alone would take 25 s
    assert {n: r["score"] for n, r in rows.items()} == {n: r["score"] for n, r in samples_and_attacks["dask"].items()}


def test_a_worker_with_another_stack_refuses(cluster):
    pool = DaskPool(cluster["address"])
    pool.plugin = SandboxPlugin(True, dict(fingerprint(), numpy="0.0"))
    try:
        pool.start()
        with pytest.raises(SystemExit, match=r"numpy \(1\.23\.5 here, 0\.0 there\)"):
            pool.started()
    finally:
        pool.client.unregister_worker_plugin(pool.plugin.name)
        pool.close()


def test_a_worker_without_bubblewrap_refuses(cluster, samples_and_attacks):
    """A worker that joins later and cannot find bwrap: the next batch refuses before sending anything."""
    env = dict(os.environ, PYTHONPATH=str(course.ROOT), PATH=str(Path(sys.executable).parent))
    with open(cluster["log"], "ab") as log:
        worker = _spawn(["worker", cluster["address"], "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                         "--name", "no-bwrap"], env, log)
    try:
        with Client(cluster["address"]) as client:
            client.wait_for_workers(3, timeout=90)
        pool = DaskPool(cluster["address"])
        pool.start()
        with pytest.raises(SystemExit, match="has no working bubblewrap"):
            pool.started()
        pool.close()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_a_submission_that_kills_every_worker_gets_a_row_saying_so(tmp_path, cluster, course_copy):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    release = _release()
    nbformat.write(fill(release, _reference_answers()), inbox / "correct.ipynb")
    killer = tmp_path / "killer.py"
    killer.write_text(KILLS_ITS_DASK_WORKER)
    nbformat.write(fill(release, dict(_reference_answers(), **read_answers(killer))), inbox / "killer.ipynb")
    rows = _by_file(grade("resnet18", [str(inbox)], course_dir=course_copy(tmp_path / "course"), jobs=1,
                          progress=False, limits=LIMITS, sandbox=False, scheduler=cluster["address"]))
    assert rows["killer.ipynb"]["score"] == "0"
    assert "every Dask worker that ran it died (2 tries)" in rows["killer.ipynb"]["notes"]
    assert rows["correct.ipynb"]["score"] == "100"


@pytest.mark.skipif(BIN is None, reason="the PostgreSQL server (initdb, pg_ctl) is not installed: "
                                        "apt-get install postgresql, or run scripts/env.sh as root")
def test_with_a_postgresql_gradebook_the_workers_record(tmp_path, cluster, course_copy):
    """Recording moves to the workers' recorders (both of them), and gives what the instructor's
    recorders give for the same verdicts: the gradebook's scores, and the autograded notebooks and
    feedback pages byte for byte."""
    inbox = _inbox(tmp_path)
    # The attack on what recording on the workers leaves around, among the samples (its controls).
    attack = read_answers(course.ROOT / "tests" / "fixtures" / "attacks" / "resnet18" / "recorder_scratch.py")
    nbformat.write(fill(_release(), dict(_reference_answers(), **attack)), inbox / "zz_attack.ipynb")
    course_dir = course_copy(tmp_path / "course")
    with running() as database:
        url = database("cluster")
        rows = _by_file(grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=2, progress=False,
                              limits=LIMITS, scheduler=cluster["address"], db_url=url))
        attacked = rows.pop("zz_attack.ipynb")
        assert _parts(attacked) == EXPECTED_ATTACKS["recorder_scratch"]
        verdict = (course_dir / "grading" / "resnet18" / "verdicts" / "zz_attack.json").read_text()
        assert "parameter_counts" in verdict and "FOUND" not in verdict, verdict  # it ran, and found nothing
        assert {n: _parts(r) for n, r in rows.items()} == {f"{s}_0.ipynb": p for s, p in EXPECTED_SAMPLES.items()}
        assert _exported(course_dir, url) == dict({f"{s}_0": float(rows[f"{s}_0.ipynb"]["score"])
                                                   for s in EXPECTED_SAMPLES}, zz_attack=float(attacked["score"]))
        with Client(cluster["address"]) as client:
            recorded = client.run(recorded_here, url)
    counts = [r["count"] for r in recorded.values()]
    assert sum(counts) == len(EXPECTED_SAMPLES) + 1 and all(counts), recorded  # on both workers
    # The same verdicts, recorded by the instructor's recorders into the course's SQLite gradebook.
    here = Path(shutil.copytree(course_dir, tmp_path / "here", ignore=shutil.ignore_patterns("autograded", "feedback")))
    verdicts = here / "grading" / "resnet18" / "verdicts"
    recorders = Recorders(here, "resnet18", verdicts, course.db_url(here), most=1)
    for student in sorted(p.stem for p in verdicts.glob("*.json")):
        recorders.record(student)
    recorders.wait()
    recorders.close()
    assert not recorders.failed and len(recorders.timings) == len(EXPECTED_SAMPLES) + 1
    for student in EXPECTED_SAMPLES:
        for folder, suffix in (("autograded", "ipynb"), ("feedback", "html")):
            path = Path(folder) / f"{student}_0" / "resnet18" / f"resnet18.{suffix}"
            assert (course_dir / path).read_bytes() == (here / path).read_bytes(), path


def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, cluster, course_copy):
    """Runs last: one of the two workers is gone for good afterwards."""
    inbox = _inbox(tmp_path, count=2)
    course_dir = course_copy(tmp_path / "course")
    verdicts = course_dir / "grading" / "resnet18" / "verdicts"
    result = {}
    with Client(cluster["address"]) as client:
        client.wait_for_workers(2, timeout=90)  # the killer's victims are back
        w1 = next(a for a, info in client.scheduler_info()["workers"].items() if info["name"] == "w1")
        batch = threading.Thread(target=lambda: result.update(rows=grade(
            "resnet18", [str(inbox)], course_dir=course_dir, jobs=4, progress=False, limits=LIMITS,
            scheduler=cluster["address"])))
        batch.start()
        # Kill it once the batch is well under way, while it is running a submission.
        while batch.is_alive() and not (verdicts.exists() and len(list(verdicts.glob("*.json"))) >= 2
                                        and client.processing(workers=[w1])[w1]):
            time.sleep(0.02)
        os.killpg(cluster["processes"]["w1"].pid, signal.SIGKILL)  # the worker and its nanny: a machine lost
        assert batch.is_alive()
        batch.join()
    assert cluster["processes"]["w1"].wait() == -signal.SIGKILL
    rows = _by_file(result["rows"])
    assert len(rows) == 2 * len(EXPECTED_SAMPLES)
    for name, row in rows.items():
        assert row["status"] == "graded" and _parts(row) == EXPECTED_SAMPLES[name.rsplit("_", 1)[0]], name
