"""The grader's side of the sandbox: a pool of warm workers, one per core.

Each worker runs ``autograder.grade.sandbox.worker`` inside bubblewrap
(``bwrap``), which gives it

* no network (a new, empty network namespace);
* a private view of the file system: the operating system and Python
  read-only, this package read-only, and an empty temporary folder as
  ``/tmp``; the course directory, the source notebooks with their hidden
  tests, the gradebook and other students' files are simply not there;
* its own pid, IPC and UTS namespaces: it cannot see or signal the grader
  or anything else on the machine, and everything in it dies with it (a
  worker ends when the grader closes its input, even if the grader is killed);
* an unprivileged user with no capabilities.

Without bubblewrap (``sandbox=False``, for machines where it cannot be
installed) the workers run as plain child processes: rlimits and time
limits still hold, but the student's code can read what the grader's user
can read. The grader says so when it starts.

A worker that dies (killed by a submission, or crashed) is replaced and the
batch goes on; the submission it was running keeps what it had recorded.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import autograder

PACKAGE_DIR = Path(autograder.__file__).resolve().parent


@dataclass
class Limits:
    wall_seconds: int = 180
    cpu_seconds: int = 300
    memory_bytes: int = 4 << 30
    file_bytes: int = 64 << 20


@dataclass
class Outcome:
    """What one submission did: its records and how the run ended."""
    records: list = field(default_factory=list)
    reason: str = None   # None, "timeout", "too much output", "worker died", ...
    exit: int = 0


def bwrap_available():
    if not shutil.which("bwrap"):
        return False
    probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True)
    return probe.returncode == 0


def _readonly_roots():
    """Folders a worker needs to see: the system, the Python installation and this package."""
    roots = {"/usr", "/etc", sys.prefix, sys.base_prefix, str(PACKAGE_DIR)}
    for path in sys.path:
        if path and os.path.isdir(path) and "site-packages" in path:
            roots.add(path)
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(roots)


def _bwrap_command(tmp):
    command = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
               "--cap-drop", "ALL", "--new-session",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--bind", tmp, "/tmp"]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = os.path.realpath(f"/{link}")
        if target.startswith("/usr/"):
            command += ["--symlink", target.lstrip("/"), f"/{link}"]
        elif os.path.isdir(target):
            command += ["--ro-bind", target, f"/{link}"]
    for root in _readonly_roots():
        command += ["--ro-bind", root, root]
    command += ["--chdir", "/tmp", "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "MPLBACKEND", "Agg", "--setenv", "RESNET_SANDBOX_PIDNS", "1",
                "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MXNET_ENGINE_TYPE", "NaiveEngine",
                "--setenv", "PYTHONPATH", str(PACKAGE_DIR.parent)]
    return command


class Worker:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.tmp = tempfile.mkdtemp(prefix="resnet-grading-")
        self.process = None

    def start(self):
        python = [sys.executable, "-m", "autograder.grade.sandbox.worker"]
        env = None
        if self.sandbox:
            command = _bwrap_command(self.tmp) + python
        else:
            command = python
            env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine",
                       PYTHONPATH=str(PACKAGE_DIR.parent))
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(os.path.join(self.tmp, "worker.log"), "ab"), env=env, text=True, bufsize=1,
                                        cwd=self.tmp, start_new_session=True)
        line = self.process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("the grading worker did not start (is the virtual environment complete?)")

    def run(self, job):
        if self.process is None or self.process.poll() is not None:
            self.start()
        job = dict(job, workdir=f"/tmp/job-{os.urandom(6).hex()}" if self.sandbox
                   else os.path.join(self.tmp, f"job-{os.urandom(6).hex()}"))
        outcome = Outcome()
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                message = json.loads(line)
                if "record" in message:
                    outcome.records.append(message["record"])
                elif "done" in message:
                    outcome.reason, outcome.exit = message["done"]["reason"], message["done"]["exit"]
                    return outcome
        except (BrokenPipeError, ValueError, OSError):
            pass
        outcome.reason = "worker died"
        self.stop()
        return outcome

    def stop(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except OSError:
                pass
            self.process.wait()
            self.process = None

    def close(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Pool:
    """Run jobs on ``size`` warm workers, in parallel threads (the work happens in the workers)."""

    def __init__(self, size, sandbox=True):
        self.workers = [Worker(sandbox) for _ in range(size)]
        self.free = list(self.workers)
        self.lock = threading.Condition()

    def start(self):
        """Start every worker (each warms up for about 2 s, in parallel)."""
        threads = [threading.Thread(target=w.start) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def close(self):
        for worker in self.workers:
            worker.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, job):
        with self.lock:
            while not self.free:
                self.lock.wait()
            worker = self.free.pop()
        try:
            return worker.run(job)
        finally:
            with self.lock:
                self.free.append(worker)
                self.lock.notify()
