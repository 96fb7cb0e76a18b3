"""The kernel behaviour the sandbox's process cap relies on, measured on this machine.

Where the grader cannot make a pids cgroup (any ordinary user), the cap is
``RLIMIT_NPROC`` in the notebook's process, set to the tasks its user has in
sight plus ``--processes`` (worker.py). These tests run that very code in
bubblewrap sandboxes as an unprivileged user (nobody, when the tests run as
root) and check that the kernel counts each sandbox on its own, and that it
exempts root, which is why a root grader uses a cgroup (test_batch_grading
shows that one holding).
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograder import course

SYSTEM_PYTHON = "/usr/bin/python3"  # readable by any user, unlike a virtual environment under /root
NOBODY = 65534
ALLOWED = 20

pytestmark = pytest.mark.skipif(not shutil.which("bwrap") or not os.path.exists(SYSTEM_PYTHON),
                                reason="needs bubblewrap and a system Python")

# The worker's own helper, then a fork loop that keeps every child until it is refused. (Run as a
# script, without its package: its one package import, the protocol, is not needed here.)
WORKER = (course.ROOT / "autograder" / "sandboxed" / "worker.py").read_text().replace("from . import protocol\n", "")
PROBE = WORKER[:WORKER.index('if __name__ == "__main__":')] + f"""
import resource, time
tasks = _tasks_of(os.getuid()) + {ALLOWED}
resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
forked = 0
while forked < {3 * ALLOWED}:
    try:
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
    except OSError:
        break
    forked += 1
print(forked)
"""


def _forks_in_sandbox(as_root=False):
    """How many processes the probe could start in a fresh sandbox."""
    unprivileged = {} if as_root or os.getuid() else {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    command = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
               "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", SYSTEM_PYTHON, "-"]
    done = subprocess.run(command, input=PROBE, capture_output=True, text=True, timeout=60, cwd="/",
                          **unprivileged)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_each_sandbox_is_counted_on_its_own():
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: _forks_in_sandbox(), range(2)))
    assert counts == [ALLOWED, ALLOWED]


@pytest.mark.skipif(os.getuid() != 0, reason="the exemption is root's")
def test_root_is_exempt_from_rlimit_nproc():
    assert _forks_in_sandbox(as_root=True) == 3 * ALLOWED
