"""Attacks on the grading protocol and on what a notebook leaves behind, through both front doors.

Written with worker.py and protocol.py open: each attack finds the channel
the way any notebook can (the worker's frame above its cell, the pipes among
its open files). Every attack is graded on ONE worker (``jobs=1``; plain
nbgrader runs one worker per command) and is followed there by a correct and
a wrong control notebook, whose per-part scores must be exactly those of the
bundled samples: no attack may change how the next notebook is graded.

The leftover attacks are also followed by a notebook that reports what it
finds of them (files in /dev/shm, SysV objects, POSIX queues): nothing.
While the batch runs, the host's shared memory is sampled: the sandbox may
add no more than its caps.
"""
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.assign.samples import fill, read_answers
from autograder.grade.batch import grade
from autograder.grade.sandbox.pool import SHM_BYTES, Limits, bwrap_available

ATTACKS = course.ROOT / "tests" / "fixtures" / "attacks" / "protocol"
FULL = {"residual": 35, "stem": 10, "resnet_block": 15, "resnet18": 15, "print_layer_shapes": 5,
        "parameter_counts": 8, "resnet18_complete": 12}
SCORES = json.loads((course.SAMPLES / "resnet18" / "expected_scores.json").read_text())
STOPPED_AT_COUNTS = dict(FULL, parameter_counts=0, resnet18_complete=0)
ZERO = {part: 0 for part in FULL}
EXPECTED = {
    # Forged or replayed results: the parts they name fail, the notebook stops there.
    "forge_before_probe": STOPPED_AT_COUNTS,
    "forge_during_probe": ZERO,
    "replay_after_probe": dict(STOPPED_AT_COUNTS, residual=FULL["residual"] - 8),  # residual_shapes: 8 points
    "early_probe": STOPPED_AT_COUNTS,
    # Malformed records: the notebook stops there; nothing reaches the grader.
    "deep_nesting": STOPPED_AT_COUNTS, "megabyte_line": STOPPED_AT_COUNTS, "invalid_utf8": STOPPED_AT_COUNTS,
    "unknown_keys": STOPPED_AT_COUNTS, "extra_done": STOPPED_AT_COUNTS,
    # Over the caps while it runs: stopped.
    "sysv_shm": STOPPED_AT_COUNTS, "semaphores": STOPPED_AT_COUNTS,
    # Leftovers under the caps: the notebook goes on (its own parameter_counts is wrong).
    "message_queues": dict(FULL, parameter_counts=0),
    "reads_secrets": FULL,
    # sys.modules emptied of MXNet before the last graded cells: the checks' names were bound before
    # any notebook ran, but MXNet's own functions import inside themselves, so this notebook's last
    # parts fail; the controls after it, on the same worker, must not notice.
    "swaps_mxnet_modules": STOPPED_AT_COUNTS,
}
# 10,050 files cross the file cap of 10,000 (/tmp and /dev/shm together), checked four times a
# second: the notebook stops there or, if it ends first, leaves them. An upper bound, then.
AT_MOST = {"shm_files": dict(FULL, parameter_counts=0)}
LEFTOVERS = ["shm_files", "sysv_shm", "semaphores", "message_queues"]
REASONS = {"forge_before_probe": "wrote its own results", "forge_during_probe": "wrote its own results",
           "replay_after_probe": "wrote its own results", "early_probe": "asked again",
           "deep_nesting": "nested more than", "megabyte_line": "a line of more than",
           "invalid_utf8": "not valid UTF-8", "unknown_keys": "expected", "extra_done": "expected",
           "sysv_shm": "shared memory", "semaphores": "semaphores"}
CONTROLS = {"correct": "correct_reference", "wrong": "relu_before_add"}
LIMITS = Limits(wall_seconds=25, cpu_seconds=60, memory_bytes=3 << 30)

# Prints what the notebook before it left in the sandbox's /dev/shm and IPC namespace.
REPORT_LEFTOVERS = '''import os
_rows = lambda kind: len(open(f"/proc/sysvipc/{kind}").read().splitlines()) - 1
print("LEFTOVERS", len(os.listdir("/dev/shm")), _rows("shm"), _rows("sem"), _rows("msg"),
      len(os.listdir("/dev/mqueue")) if os.path.isdir("/dev/mqueue") else -1)
'''

pytestmark = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                reason="bubblewrap is needed for sandboxed grading")


def _release():
    return nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)


def _answers(sample):
    return read_answers(course.SAMPLES / "resnet18" / f"{sample}.py")


def notebooks():
    """{name: notebook} in grading order: each attack, then its report and controls."""
    release, found = _release(), {}
    for number, attack in enumerate(sorted(ATTACKS.glob("*.py"))):
        answers = dict(_answers("correct_reference"))
        answers.update(read_answers(attack))
        stem = f"p{number:02d}_{attack.stem}"
        found[stem] = fill(release, answers)
        if attack.stem in LEFTOVERS:
            report = dict(_answers("correct_reference"))
            report["residual"] = REPORT_LEFTOVERS + report["residual"]
            found[f"{stem}_report"] = fill(release, report)
        for kind, sample in CONTROLS.items():
            found[f"{stem}_then_{kind}"] = fill(release, _answers(sample))
    return found


def _shared_memory():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith("Shmem:"))


class SharedMemoryWatch:
    """The host's Shmem (tmpfs and SysV shared memory) at its highest while a batch runs."""

    def __enter__(self):
        self.before = self.worst = _shared_memory()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.wait(0.02):
            self.worst = max(self.worst, _shared_memory())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.after = _shared_memory()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    course_dir = prepare_course(root / "course")
    inbox = root / "inbox"
    inbox.mkdir()
    for name, nb in notebooks().items():
        nbformat.write(nb, inbox / f"{name}.ipynb")
    with SharedMemoryWatch() as shm:
        rows = grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=1, progress=False, limits=LIMITS)
    verdicts = course_dir / "grading" / "resnet18" / "verdicts"
    return {"rows": {Path(r["input"]).stem: r for r in rows}, "shm": shm, "verdicts": verdicts}


def _parts(row):
    return {key.split(" /")[0]: float(value) for key, value in row.items() if " /" in key}


def _printed(verdicts, student):
    verdict = json.loads((verdicts / f"{student}.json").read_text())
    return " ".join(record.get("stdout", "") for record in verdict["outputs"].values())


def _stem(attack):
    return next(p for p in notebooks() if p.endswith(attack) and p[:1] == "p")


def test_every_attack_is_in_the_suite():
    assert sorted([*EXPECTED, *AT_MOST]) == sorted(p.stem for p in ATTACKS.glob("*.py"))


def test_the_batch_ran_in_order_on_one_worker(batch):
    """Each control was graded right after its attack (one worker, one thread, in name order)."""
    by_time = sorted(batch["verdicts"].glob("p*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert [p.stem for p in by_time] == sorted(notebooks())


@pytest.mark.parametrize("attack", sorted([*EXPECTED, *AT_MOST]))
def test_attack_scores_and_the_controls_after_it(batch, attack):
    stem, rows = _stem(attack), batch["rows"]
    got = _parts(rows[stem])
    if attack in AT_MOST:
        assert all(got[p] <= AT_MOST[attack][p] for p in FULL) and got["residual"] == FULL["residual"]
    else:
        assert got == EXPECTED[attack], rows[stem]["notes"]
    if attack in REASONS:
        assert REASONS[attack] in rows[stem]["notes"]
    for kind, sample in CONTROLS.items():
        assert _parts(rows[f"{stem}_then_{kind}"]) == SCORES[sample], (attack, kind)
        assert rows[f"{stem}_then_{kind}"]["notes"] == ""


@pytest.mark.parametrize("attack", LEFTOVERS)
def test_nothing_is_left_for_the_next_notebook(batch, attack):
    stem = _stem(attack)
    assert _parts(batch["rows"][f"{stem}_report"]) == FULL
    printed = _printed(batch["verdicts"], f"{stem}_report")
    assert "LEFTOVERS 0 0 0 0 0" in printed, printed


def test_the_leftover_attacks_ran(batch):
    assert "SEGMENTS" in _printed(batch["verdicts"], _stem("sysv_shm")) or \
        "more shared memory than its cap" in batch["rows"][_stem("sysv_shm")]["notes"]
    queues = _printed(batch["verdicts"], _stem("message_queues")).split()
    assert int(queues[queues.index("QUEUES") + 1]) > 0 and int(queues[queues.index("POSIX") + 1]) == 4


def test_the_hosts_shared_memory_stays_within_the_caps(batch):
    """17 x 256 MiB of SysV segments, where uncapped: the sandbox adds at most its caps to the host."""
    shm = batch["shm"]
    # /tmp, /dev/shm and SysV (capped at the /dev/shm size), and the segment being filled when the
    # helper, which checks 20 times a second, stops the notebook.
    allowed = LIMITS.disk_bytes + 2 * SHM_BYTES + (256 << 20)
    assert shm.worst - shm.before < allowed, (shm.worst - shm.before) >> 20
    assert shm.after - shm.before < 64 << 20  # and it is all given back


def test_secrets_are_out_of_reach(batch):
    printed = _printed(batch["verdicts"], _stem("reads_secrets"))
    assert "DENIED /etc/shadow" in printed and "DENIED /etc/gshadow" in printed
    assert "READ" not in printed
    etc = set(printed.split("ETC ", 1)[1].split("PACKAGE")[0].split())
    assert etc <= {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf",
                   "alternatives", "host.conf", "hosts", "mime.types", "passwd", "group"}, etc
    # Of the package, only the student runtime and the sandboxed worker with the hidden parts'
    # observers: no judge, no reference, no intake, recording or authoring, readable or importable.
    files = printed.split("PACKAGE ", 1)[1].split("\n", 1)[0].split()
    assert "sandboxed/observers/resnet18.py" in files and "student/checks/resnet18.py" in files
    assert all(f == "__init__.py" or f.startswith(("student/", "sandboxed/")) for f in files), files
    assert "IMPORTED" not in printed and printed.count("\nNO autograder.") == 5, printed


# ---------------------------------------------------------------- plain nbgrader

def _nbgrader_scores(root, student):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        by_id = {g.name: g.score for g in gb.find_submission_notebook("resnet18", "resnet18", student).grades}
    return {part: sum(by_id[g] for g in ids) for part, ids in course.parts_of(course.source_notebook("resnet18"))}


@pytest.fixture(scope="module")
def plain_nbgrader(tmp_path_factory):
    """One ``nbgrader autograde`` command (so one warm worker) over every notebook of the suite."""
    root = tmp_path_factory.mktemp("plain")
    course_dir = prepare_course(root / "course")
    config = root / "jupyter"
    config.mkdir()
    (config / "nbgrader_config.py").write_text(
        "c = get_config()\nc.TrustedExecute.timeout = 25\nc.TrustedExecute.cpu = 60\n"
        "c.TrustedExecute.memory = 3072\n")
    for name, nb in notebooks().items():
        target = course_dir / "submitted" / name / "resnet18" / "resnet18.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    env = {**os.environ, "PYTHONPATH": str(course.ROOT), "JUPYTER_CONFIG_DIR": str(config)}
    done = subprocess.run([shutil.which("nbgrader"), "autograde", "resnet18"], cwd=course_dir, env=env,
                          capture_output=True, text=True)
    return {"root": course_dir, "done": done}


def test_plain_nbgrader_scores_attacks_and_controls_alike(plain_nbgrader):
    root = plain_nbgrader["root"]
    assert plain_nbgrader["done"].returncode == 0, plain_nbgrader["done"].stderr[-3000:]
    for attack in sorted([*EXPECTED, *AT_MOST]):
        stem = _stem(attack)
        got = _nbgrader_scores(root, stem)
        if attack in AT_MOST:
            assert all(got[p] <= AT_MOST[attack][p] for p in FULL), attack
        else:
            assert got == EXPECTED[attack], attack
        for kind, sample in CONTROLS.items():
            assert _nbgrader_scores(root, f"{stem}_then_{kind}") == SCORES[sample], (attack, kind)
        if attack in LEFTOVERS:
            assert _nbgrader_scores(root, f"{stem}_report") == FULL
