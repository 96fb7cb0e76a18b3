"""The grader's side of the protocol: a worker that breaks it is stopped and replaced, never reused.

The worker here is tests/rogue_worker.py, which breaks the protocol on its
first job as a worker taken over by a notebook could (deep nesting, a
megabyte line, invalid UTF-8, unknown fields or messages, a second done,
output after done). The grader must not raise, must say so in that job's
outcome only, and must run the next job on a new worker. Also here: with a
root grader, the sandbox runs as an unprivileged host user.
"""
import os
import select
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from autograder import course
from autograder.grade import trusted
from autograder.grade.sandbox import pool
from rogue_worker import LINES

ROGUE = [*LINES, "extra_done"]


class RogueWorker(pool.Worker):
    module = "tests.rogue_worker"


def _job():
    nb = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    limits = pool.Limits(wall_seconds=20)
    return trusted.job(nb, "resnet18", trusted.plan("resnet18"), trusted.draw_challenges("resnet18", seed=1), limits)


@pytest.fixture(scope="module")
def job():
    return _job()


def _rogue(monkeypatch, tmp_path, mode):
    once = tmp_path / "once"
    once.touch()
    monkeypatch.setenv("ROGUE_MODE", mode)
    monkeypatch.setenv("ROGUE_ONCE", str(once))
    monkeypatch.setenv("PYTHONPATH", str(course.ROOT))
    worker = RogueWorker(sandbox=False)
    worker.start()
    return worker


@pytest.mark.parametrize("mode", ROGUE)
def test_a_worker_that_breaks_the_protocol_is_replaced(monkeypatch, tmp_path, job, mode):
    worker = _rogue(monkeypatch, tmp_path, mode)
    try:
        first_pid = worker.process.pid
        outcome = worker.run(job)
        assert outcome.reason.startswith("worker stopped: it broke the protocol"), outcome.reason
        assert worker.process is None  # stopped, not kept for the next job
        again = worker.run(job)
        assert again.reason is None and worker.process.pid != first_pid
        assert [r["stdout"] for r in again.records] == ["ran"]
    finally:
        worker.close()


def test_output_after_done_is_seen_and_the_worker_replaced_before_the_next_job(monkeypatch, tmp_path, job):
    worker = _rogue(monkeypatch, tmp_path, "output_after_done")
    try:
        first_pid = worker.process.pid
        outcome = worker.run(job)  # its done came before the late line: this job's outcome stands
        assert outcome.reason is None
        time.sleep(1)
        again = worker.run(job)
        assert worker.process.pid != first_pid  # the late line ended it: the next job got a new worker
        assert again.reason is None and "late" not in [r["stdout"] for r in again.records]
    finally:
        worker.close()


def test_the_notes_say_the_worker_was_replaced(job):
    outcome = pool.Outcome(reason="worker stopped: it broke the protocol (a line that is not valid UTF-8)")
    nb = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    note = trusted.verdicts(nb, "resnet18", job, outcome)["note"]
    assert "broke the grading protocol and was replaced" in note and "UTF-8" in note


@pytest.mark.skipif(not pool.bwrap_available() and not os.environ.get("CI"), reason="bubblewrap is needed")
@pytest.mark.skipif(os.getuid() != 0, reason="the grader runs as an ordinary user: so does the sandbox")
def test_a_root_grader_runs_the_sandbox_as_an_unprivileged_user():
    user, why_not = pool.sandbox_user()
    if user is None and not os.environ.get("CI"):
        pytest.skip(f"the sandbox would run as host root here: {why_not}")
    assert user is not None and user[0] != 0, why_not
    worker = pool.Worker(sandbox=True)
    try:
        worker.start()
        uids = set()
        for pid in _descendants(worker.process.pid):
            with open(f"/proc/{pid}/status") as f:
                uids.add(next(int(line.split()[1]) for line in f if line.startswith("Uid:")))
        assert uids == {user[0]}  # bubblewrap, the worker, all of it
        assert not any("HOST ROOT" in said for said in pool.caveats(True, worker.cgroup))
    finally:
        worker.close()


@pytest.mark.skipif(not pool.bwrap_available() and not os.environ.get("CI"), reason="bubblewrap is needed")
def test_a_stopped_sandboxed_worker_ends_with_bubblewrap_even_with_its_input_still_open():
    """The grader stops a worker by killing bubblewrap's process group. The worker is in a session
    of its own, out of that kill's reach: it must die with bubblewrap (its parent death signal),
    not go on until its input ends (here it never would: the test holds the input open)."""
    worker = pool.Worker(sandbox=True)
    try:
        worker.start()
        inner = _descendants(worker.process.pid) - {worker.process.pid}
        assert inner
        pidfds = [os.pidfd_open(pid) for pid in inner]
        held = os.dup(worker.process.stdin.fileno())
        try:
            worker.stop()
            for fd in pidfds:  # readable once that process has ended
                assert select.select([fd], [], [], 60)[0], "the worker outlived bubblewrap"
        finally:
            os.close(held)
            for fd in pidfds:
                os.close(fd)
    finally:
        worker.close()


def _sandboxed(*sources, wall_seconds=60):
    """The outcomes of one-cell notebooks (``sources``), run in turn on one sandboxed worker."""
    worker = pool.Worker(sandbox=True)
    try:
        return [worker.run(trusted.job(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]),
                                       "resnet18", {}, {}, pool.Limits(wall_seconds=wall_seconds)))
                for source in sources]
    finally:
        worker.close()


@pytest.mark.skipif(not pool.bwrap_available() and not os.environ.get("CI"), reason="bubblewrap is needed")
def test_the_sandboxed_worker_imports_mxnet_with_pythons_own_distutils_where_it_has_one():
    """MXNet imports distutils; setuptools' stand-in for it costs every worker's start about 0.15 s
    more. Where this Python has its own (3.11), the worker's MXNet uses that: the setting reaches the
    sandbox, which clears the grader's environment."""
    import sysconfig
    from pathlib import Path
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / "distutils"
    outcome, = _sandboxed(
        "import os, sys\nprint(sys.modules['distutils'].__file__, os.environ.get('SETUPTOOLS_USE_DISTUTILS'))")
    assert outcome.reason is None, outcome
    where, setting = outcome.records[0]["stdout"].split()
    if (stdlib / "version.py").exists():
        assert (where, setting) == (str(stdlib / "__init__.py"), "stdlib")
    else:
        assert setting == "None" and "setuptools" in where


def _descendants(root):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, grew = set(), True
    while grew:
        more = {pid for pid, parent in parents.items() if (parent == root or parent in found) and pid not in found}
        found |= more
        grew = bool(more)
    # The cgroup's /bin/sh execs setpriv, which execs bubblewrap: the Popen pid is bubblewrap itself.
    return found | {root}


def test_the_worker_binds_mxnet_and_the_stand_ins_before_any_notebook():
    """The checks name MXNet's modules lazily (the grader never imports MXNet); in the sandbox the
    worker's warm-up binds them, and makes the stand-in classes, before any notebook runs: a
    notebook that then replaces ``mxnet.gluon`` in ``sys.modules`` changes nothing the checks use."""
    code = textwrap.dedent("""
        import sys
        from autograder import course
        from autograder.student import lazy_mxnet
        from autograder.student.checks import bottleneck, resnet18
        assert "mxnet" not in sys.modules
        from autograder.sandboxed import worker
        worker._warm_up([m for a in course.ASSIGNMENTS for m in course.OBSERVER_MODULES[a]])
        made = [f.cache_info().currsize for f in (resnet18._unit_spy_base, bottleneck._block_spy_base,
                                                   bottleneck._recorder_class)]
        real = sys.modules["mxnet.gluon"]
        sys.modules["mxnet.gluon"] = None   # what a notebook's code could do before its first graded cell
        spies = [resnet18.unit_spy(), bottleneck.block_spy()]
        print(made, lazy_mxnet.gluon.nn is real.nn, all(issubclass(s, real.nn.HybridBlock) for s in spies))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=course.ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[1, 1, 1] True True", done.stdout


@pytest.mark.skipif(not pool.bwrap_available() and not os.environ.get("CI"), reason="bubblewrap is needed")
def test_the_shell_made_before_any_notebook_reaches_the_next_notebook_as_it_was_made():
    """The worker makes the IPython shell once, before any fork; each notebook runs in its own
    copy. What one notebook does to its shell (an input transformer, an attribute, a magic, its
    history, a file in its home's IPython folder) is gone for the next one on the same worker."""
    meddle = textwrap.dedent("""
        import os
        shell = get_ipython()
        shell.input_transformers_post.append(lambda lines: ["raise SystemExit\\n"])
        shell.marker = "left by the first notebook"
        shell.register_magic_function(lambda line: "magic", magic_name="left")
        shell.history_manager.store_inputs(1, "secret = 42")
        os.makedirs(os.path.expanduser("~/.ipython/profile_default"), exist_ok=True)
        open(os.path.expanduser("~/.ipython/profile_default/history.sqlite"), "w").write("x")
        print("meddled", shell.history_manager.enabled)
    """)
    look = textwrap.dedent("""
        import os
        shell = get_ipython()
        print(len(shell.input_transformers_post), hasattr(shell, "marker"),
              "left" in shell.magics_manager.magics["line"],
              list(shell.history_manager.get_range(raw=True)), shell.history_manager.enabled,
              os.path.exists(os.path.expanduser("~/.ipython/profile_default/history.sqlite")))
    """)
    first, second = _sandboxed(meddle, look)
    assert first.reason is None and first.records[0]["stdout"] == "meddled False\n", first
    assert second.reason is None, second
    assert second.records[0]["stdout"] == "0 False False [] False False\n", second.records


@pytest.mark.skipif(not pool.bwrap_available() and not os.environ.get("CI"), reason="bubblewrap is needed")
def test_the_worker_starts_without_mxnets_optional_extras_and_a_notebook_can_still_import_them():
    """MXNet imports scikit-learn and scipy.stats when they are installed, for features no graded
    cell uses (about 0.25 s of every worker's start); the worker imports MXNet without them. A
    notebook that wants them imports them as usual."""
    outcome, = _sandboxed(textwrap.dedent("""
        import sys
        before = [name in sys.modules for name in ("sklearn", "scipy.stats")]
        import mxnet
        from sklearn.datasets import load_digits
        from scipy import stats
        print(before, mxnet.model.BASE_ESTIMATOR is object, load_digits().images.shape, stats.norm.cdf(0))
    """))
    assert outcome.reason is None, outcome
    assert outcome.records[0]["stdout"] == "[False, False] True (1797, 8, 8) 0.5\n", outcome.records
