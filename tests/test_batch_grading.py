"""The batch grader on real notebooks: samples, broken files and an attack suite in one batch.

One batch is graded for the whole module (it takes about a minute): the
bundled samples must get exactly the scores plain nbgrader gives them, every
input file must get exactly one row, broken files a clear reason, and no
attack may raise a score, reach the instructor's files or the network, leave
a process behind, take the host's free processes or memory (what a sandbox
writes is memory: the host's shared memory is what grows), or stop the
batch. What the host has is sampled while the batch runs.
"""
import copy
import csv
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.grade.batch import grade
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade.sandbox.pool import SHM_BYTES, Limits, bwrap_available

ATTACKS = course.ROOT / "tests" / "fixtures" / "attacks" / "resnet18"
FULL = {"residual": 35, "stem": 10, "resnet_block": 15, "resnet18": 15, "print_layer_shapes": 5,
        "parameter_counts": 8, "resnet18_complete": 12}
# Attacks in the first answer cell replace Residual: nothing can be earned from that cell on
# (transformers erase every later cell; the others leave Residual broken).
STOPPED_AT_RESIDUAL = dict(FULL, residual=0, resnet18_complete=0)
STOPPED_AT_COUNTS = dict(FULL, parameter_counts=0, resnet18_complete=0)
ZERO = {part: 0 for part in FULL}
EXPECTED_ATTACKS = {
    "input_transformer": ZERO, "ast_transformer": ZERO, "patched_libraries": ZERO,
    "always_equal": dict(STOPPED_AT_RESIDUAL, parameter_counts=0),
    "instructor_files": STOPPED_AT_RESIDUAL, "background_process": STOPPED_AT_RESIDUAL,
    "network": STOPPED_AT_RESIDUAL,
    "exits_early": dict(FULL, parameter_counts=0),  # SystemExit ends the cell, not the notebook
    "hard_exit": STOPPED_AT_COUNTS, "kills_itself": STOPPED_AT_COUNTS,
    # The worker is the sandbox's init, which the kernel shields from the notebook's signals; the
    # helper that relays this notebook's records is not: the notebook stops there, the worker goes on.
    "kills_the_grader": STOPPED_AT_COUNTS, "infinite_loop": STOPPED_AT_COUNTS,
    # The limit holds; whether the notebook survives its MemoryError (and scores the whole
    # network) depends on where the last allocation failed, so this one is an upper bound.
    "memory_bomb": dict(FULL, parameter_counts=0),
    "fork_loop": dict(FULL, parameter_counts=0), "disk_filler": dict(FULL, parameter_counts=0),
    "file_flood": STOPPED_AT_COUNTS,
}

LIMITS = Limits(wall_seconds=25, cpu_seconds=60, memory_bytes=3 << 30)

# Skipped only off CI: CI must show that the sandbox holds.
pytestmark = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                reason="bubblewrap is needed for sandboxed grading")


def _release():
    return nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)


def _reference_answers():
    return read_answers(course.SAMPLES / "resnet18" / "correct_reference.py")


def _bad_inputs(inbox):
    correct = fill(_release(), _reference_answers())
    (inbox / "empty.ipynb").write_bytes(b"")
    (inbox / "not_json.ipynb").write_text('{"cells": [')
    (inbox / "nbformat3.ipynb").write_text(json.dumps(nbformat.convert(copy.deepcopy(correct), 3)))
    stripped = nbformat.from_dict(correct)
    for cell in stripped.cells:
        cell.metadata = {}
    nbformat.write(stripped, inbox / "Copy of stripped_metadata.ipynb")
    deleted = nbformat.from_dict(correct)
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    nbformat.write(deleted, inbox / "deleted_tests.ipynb")
    doubled = nbformat.from_dict(correct)
    doubled.cells = [copy for c in doubled.cells
                     for copy in ([c, c] if c.metadata.get("nbgrader", {}).get("grade") else [c])]
    nbformat.write(doubled, inbox / "duplicated_tests.ipynb")
    other = nbformat.read(course.RELEASE / "bottleneck" / "bottleneck.ipynb", as_version=4)
    nbformat.write(fill(other, read_answers(course.SAMPLES / "bottleneck" / "correct_reference.py")),
                   inbox / "wrong_assignment.ipynb")
    huge = nbformat.from_dict(correct)
    huge.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (50 << 20))]
    nbformat.write(huge, inbox / "huge_output.ipynb")


def _own_processes():
    """Processes descending from this one (the grader, its workers and all they started)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    return len(ours) - 1


def _shared_memory():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith("Shmem:"))


class HostWatch:
    """Samples, while the batch runs, what an attack could take from the host."""

    def __init__(self):
        self.before = self.sample()
        self.worst = dict(self.before)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def sample(self):
        return {"processes": _own_processes(), "shared_memory": _shared_memory()}

    def run(self):
        while not self.stop.wait(0.1):
            for key, value in self.sample().items():
                self.worst[key] = max(self.worst[key], value)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.after = self.sample()


def _hidden_marker_answers():
    """A correct answer whose own code holds nbgrader's marker text, in a comment and a string."""
    answers = dict(_reference_answers())
    answers["residual"] = ('# BEGIN HIDDEN TESTS is what nbgrader looks for; this is my own comment\n'
                           'MY_NOTE = "### BEGIN HIDDEN TESTS"\n' + answers["residual"])
    return answers


def _student_edition_notebook(folder):
    from autograder.assign.publish import publish
    publish("students", folder, "example-course/resnet-students")
    return nbformat.read(folder / "release" / "resnet18" / "resnet18.ipynb", as_version=4)


def write_samples_and_attacks(inbox, course_dir, port):
    """The bundled samples and the attack suite as notebooks in ``inbox`` (used by test_dask_grading)."""
    for student, path in samples("resnet18", course.SAMPLES).items():
        nbformat.write(fill(_release(), read_answers(path)), inbox / f"{student}.ipynb")
    write_attacks(inbox, course_dir, port)


def write_attacks(inbox, course_dir, port):
    """``attack_<name>.ipynb`` in ``inbox``: the correct answer with each attack of the suite in its cell."""
    release = _release()
    for attack in sorted(ATTACKS.glob("*.py")):
        code = (attack.read_text().replace('os.environ.get("ATTACK_PORT", "1")', f'"{port}"')
                .replace('os.environ.get("ATTACK_COURSE", "/nonexistent")', repr(str(course_dir))))
        answers = dict(_reference_answers())
        patched = ATTACKS / f".{attack.stem}.tmp"
        patched.write_text(code)
        answers.update(read_answers(patched))
        patched.unlink()
        nbformat.write(fill(release, answers), inbox / f"attack_{attack.stem}.ipynb")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    course_dir = prepare_course(root / "course")
    inbox = root / "inbox"
    inbox.mkdir()
    release = _release()
    edition = _student_edition_notebook(root / "edition")
    for student, path in samples("resnet18", course.SAMPLES).items():
        nbformat.write(fill(release, read_answers(path)), inbox / f"{student}.ipynb")
        # The same answers in the notebook students get from the published edition.
        nbformat.write(fill(edition, read_answers(path)), inbox / f"edition_{student}.ipynb")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    write_attacks(inbox, course_dir, listener.getsockname()[1])
    nbformat.write(fill(release, _hidden_marker_answers()), inbox / "hidden_marker.ipynb")
    _bad_inputs(inbox)
    with HostWatch() as host:
        rows = grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=2, progress=False,
                     limits=LIMITS)
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    return {"rows": {Path(r["input"]).name: r for r in rows}, "course": course_dir, "inbox": inbox,
            "connected": connected, "host": host}


def _parts(row):
    return {key.split(" /")[0]: float(value) for key, value in row.items() if " /" in key}


def test_one_row_per_input_file(batch):
    files = sorted(p.name for p in batch["inbox"].iterdir())
    assert sorted(batch["rows"]) == files
    with open(batch["course"] / "grading" / "resnet18" / "grades.csv") as f:
        assert len(list(csv.DictReader(f))) == len(files)


def test_samples_get_the_same_scores_as_plain_nbgrader(batch):
    expected = json.loads((course.SAMPLES / "resnet18" / "expected_scores.json").read_text())
    for student, parts in expected.items():
        assert _parts(batch["rows"][f"{student}.ipynb"]) == parts, student


def test_notebooks_from_the_student_edition_get_the_same_scores(batch):
    students = samples("resnet18", course.SAMPLES)
    assert students
    for student in students:
        row = batch["rows"][f"edition_{student}.ipynb"]
        assert row["status"] == "graded" and "repaired" not in row["notes"].lower(), row
        assert _parts(row) == _parts(batch["rows"][f"{student}.ipynb"]), student


@pytest.mark.parametrize("attack", sorted(EXPECTED_ATTACKS))
def test_no_attack_raises_a_score(batch, attack):
    row = batch["rows"][f"attack_{attack}.ipynb"]
    assert row["status"] == "graded"
    if attack == "memory_bomb":
        got = _parts(row)
        assert all(got[p] <= EXPECTED_ATTACKS[attack][p] for p in FULL) and got["parameter_counts"] == 0
        assert got["residual"] == FULL["residual"]  # parts before the bomb keep their marks
    else:
        assert _parts(row) == EXPECTED_ATTACKS[attack]


def test_attacks_are_all_in_the_suite():
    assert sorted(EXPECTED_ATTACKS) == sorted(p.stem for p in ATTACKS.glob("*.py"))


def test_stopped_notebooks_say_why(batch):
    assert "ran out of time" in batch["rows"]["attack_infinite_loop.ipynb"]["notes"]
    assert "killed the process that grades it" in batch["rows"]["attack_kills_the_grader.ipynb"]["notes"]
    assert "too many files" in batch["rows"]["attack_file_flood.ipynb"]["notes"]


def test_instructor_files_and_network_are_out_of_reach(batch):
    verdict = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / "attack_instructor_files.json")
                         .read_text())
    printed = " ".join(record.get("stdout", "") for record in verdict["outputs"].values())
    assert "DENIED" in printed and str(batch["course"]) in printed  # the attack ran
    assert "READ" not in printed and "WROTE" not in printed
    for path in (batch["course"]).rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".db", ".py"):
            assert b"pwned" not in path.read_bytes()[-100:], path
    network = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / "attack_network.json").read_text())
    assert "CONNECTED" not in json.dumps(network)
    assert not batch["connected"]


def test_no_process_is_left_behind(batch):
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "resnet-attack-leftover" not in listing


def _printed(batch, student):
    verdict = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / f"{student}.json").read_text())
    return " ".join(record.get("stdout", "") for record in verdict["outputs"].values())


def test_a_fork_loop_is_capped(batch):
    forked, refused = (int(n) for n in _printed(batch, "attack_fork_loop").split("FORKED")[1].split()[::2])
    assert forked < LIMITS.processes and refused > 0  # the attack ran into the cap ...
    host = batch["host"]
    # ... and the host kept its free processes: two capped workers, the recorder and the tools it
    # runs, where the fork loop alone would have made 3,000.
    assert host.worst["processes"] - host.before["processes"] < 2 * LIMITS.processes + 100
    assert host.after["processes"] <= host.before["processes"] + 2


def test_a_disk_filler_is_capped(batch):
    printed = _printed(batch, "attack_disk_filler")
    written = {folder: int(mib) for folder, mib in (line.split()[1:3] for line in printed.splitlines()
                                                   if line.startswith("WROTE"))}
    assert written["/"] == written["/dev"] == 0
    cap = (LIMITS.disk_bytes + SHM_BYTES) >> 20
    assert 0 < sum(written.values()) <= cap  # it wrote until the private /tmp and /dev/shm were full
    # What the sandboxes wrote is memory: the host's Shmem (tmpfs and SysV shared memory), sampled
    # while the batch ran, grew by at most two workers' caps (where the filler, uncapped, writes 3 GiB).
    host = batch["host"]
    assert host.worst["shared_memory"] - host.before["shared_memory"] < 2 * (cap << 20) + (200 << 20)


def test_student_code_with_nbgraders_marker_text_gets_feedback(batch):
    row = batch["rows"]["hidden_marker.ipynb"]
    assert row["status"] == "graded" and _parts(row) == FULL and "feedback" not in row["notes"]
    page = (batch["course"] / "feedback" / "hidden_marker" / "resnet18" / "resnet18.html").read_text()
    assert "this is my own comment" in page and "MY_NOTE" in page  # the student's cell as written
    assert "END HIDDEN TESTS" not in page  # the test cells' hidden regions are still removed


BAD = {"empty.ipynb": "empty", "not_json.ipynb": "invalid JSON", "wrong_assignment.ipynb": "bottleneck"}
REPAIRED = ["nbformat3.ipynb", "Copy of stripped_metadata.ipynb", "deleted_tests.ipynb",
            "duplicated_tests.ipynb", "huge_output.ipynb"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_files_get_a_row_with_their_reason(batch, name):
    row = batch["rows"][name]
    assert row["status"] == "unusable" and row["score"] == "0"
    assert BAD[name] in row["notes"]


@pytest.mark.parametrize("name", REPAIRED)
def test_repairable_files_are_repaired_and_graded_in_full(batch, name):
    row = batch["rows"][name]
    assert row["status"] == "graded"
    assert _parts(row) == FULL


def test_feedback_and_summary_are_written(batch):
    work = batch["course"] / "grading" / "resnet18"
    assert (work / "summary.png").stat().st_size > 1000
    rates = list(csv.DictReader(open(work / "pass_rates.csv")))
    assert [r["part"] for r in rates] == list(FULL)
    page = (batch["course"] / "feedback" / "relu_before_add" / "resnet18" / "resnet18.html").read_text()
    assert "add first, then ReLU" in page and "HIDDEN TESTS" not in page


def test_rerun_skips_unchanged_submissions(batch):
    import time
    shutil.rmtree(batch["course"] / "feedback" / "attack_hard_exit")  # lost since: the rerun says so
    start = time.monotonic()
    rows = grade("resnet18", [str(batch["inbox"])], course_dir=batch["course"], jobs=2, progress=False,
                 limits=LIMITS)
    assert time.monotonic() - start < 30
    assert {Path(r["input"]).name: r["score"] for r in rows} == {n: r["score"] for n, r in batch["rows"].items()}
    notes = {Path(r["input"]).name: r["notes"] for r in rows}
    assert "no feedback page" in notes["attack_hard_exit.ipynb"]
    assert not any("no feedback page" in note for name, note in notes.items() if name != "attack_hard_exit.ipynb")
