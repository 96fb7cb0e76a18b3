"""The grader's side of the sandbox: a pool of warm workers, one per core.

Each worker runs ``autograder.sandboxed.worker`` inside bubblewrap
(``bwrap``), which gives it

* no network (a new, empty network namespace);
* a private view of the file system: the operating system and Python
  read-only, this package read-only, a size-limited, memory-backed ``/tmp``
  (``Limits.disk_bytes``) and ``/dev/shm`` (``SHM_BYTES``), everything else
  read-only; the course directory, the source notebooks with their hidden
  tests, the gradebook and other students' files are simply not there;
* its own pid, IPC and UTS namespaces: it cannot see or signal the grader
  or anything else on the machine, and everything in it dies with it (a
  worker ends when the grader closes its input, even if the grader is killed).
  The worker is the namespace's pid 1, so the notebooks it runs cannot kill it;
* its own user namespace, as an unprivileged user with no capabilities, in
  which no further user namespace can be made (so no tmpfs of its own);

and, with or without bubblewrap, a cap on the tasks (processes and threads)
a notebook may start, ``Limits.processes``:

* a pids cgroup per worker where the grader may make one (root, on cgroup v1
  or on the root of cgroup v2): the kernel refuses a fork past the cap;
* otherwise ``RLIMIT_NPROC`` in the notebook's process (see worker.py). The
  kernel counts it per user *and user namespace*, so in the sandbox it counts
  the worker's own processes only; without the sandbox it counts all the
  grader's user's processes. The kernel ignores it for root, so a root
  grader that cannot make a cgroup has no cap, and says so when it starts.

Without bubblewrap (``sandbox=False``, for machines where it cannot be
installed) the workers run as plain child processes: rlimits, the process
cap and time limits still hold, but the student's code can read and write
what the grader's user can, and its files are not capped beyond the size of
each one. The grader says so when it starts.

A worker that dies (killed by a submission, or crashed) is replaced and the
batch goes on; the submission it was running keeps what it had recorded.
"""
import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import autograder
from autograder import course

PACKAGE_DIR = Path(autograder.__file__).resolve().parent
SHM_BYTES = 64 << 20  # /dev/shm in the sandbox: enough for semaphores and small shared arrays


@dataclass
class Limits:
    wall_seconds: int = 180
    cpu_seconds: int = 300
    memory_bytes: int = 4 << 30
    file_bytes: int = 64 << 20
    processes: int = 256          # tasks (processes and threads) a notebook may start
    disk_bytes: int = 256 << 20   # a worker's private /tmp; memory-backed, so it counts against RAM


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


@functools.lru_cache(maxsize=None)
def _bwrap_caps_tmpfs():
    """Whether this bubblewrap can size a tmpfs and forbid nested user namespaces (both since 0.8).

    Without ``--disable-userns`` the student's code could make a user namespace of its own
    and mount an unlimited tmpfs in it, so the size cap needs both."""
    probe = subprocess.run(["bwrap", "--unshare-user", "--disable-userns", "--ro-bind", "/", "/",
                            "--size", str(1 << 20), "--tmpfs", "/tmp", "true"], capture_output=True)
    return probe.returncode == 0


class PidsCgroup:
    """A pids cgroup for one worker: the kernel refuses a fork once ``pids.max`` tasks are in it."""

    _names = itertools.count()

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls):
        """A new cgroup, or None where this user cannot make one (not root, read-only cgroup fs, ...)."""
        name = f"resnet-grading-{os.getpid()}-{next(cls._names)}"
        for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):  # cgroup v1's pids hierarchy, cgroup v2
            try:
                if base == "/sys/fs/cgroup":  # hand the pids controller down (never create this file)
                    fd = os.open(f"{base}/cgroup.subtree_control", os.O_WRONLY)
                    try:
                        os.write(fd, b"+pids")
                    finally:
                        os.close(fd)
                os.mkdir(f"{base}/{name}")
            except OSError:
                continue
            if os.path.exists(f"{base}/{name}/pids.max"):
                return cls(f"{base}/{name}")
            os.rmdir(f"{base}/{name}")
        return None

    def wrap(self, command):
        """``command``, started inside this cgroup (before it can fork)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path, *command]

    def allow(self, more):
        """Let ``more`` tasks start on top of those in the cgroup now (the ready worker)."""
        with open(f"{self.path}/pids.current") as f:
            current = int(f.read())
        with open(f"{self.path}/pids.max", "w") as f:
            f.write(str(current + more))

    def remove(self):
        for _ in range(500):  # killed tasks leave the cgroup once reaped
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _readonly_roots():
    """Folders a worker needs to see: the system, the Python installation and this package."""
    roots = {"/usr", "/etc", sys.prefix, sys.base_prefix, str(PACKAGE_DIR)}
    for path in sys.path:
        if path and os.path.isdir(path) and "site-packages" in path:
            roots.add(path)
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(roots)


def _bwrap_command(disk_bytes):
    command = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
               "--cap-drop", "ALL", "--new-session", "--as-pid-1", "--proc", "/proc", "--dev", "/dev"]
    if _bwrap_caps_tmpfs():
        command += ["--disable-userns", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
                    "--size", str(disk_bytes), "--tmpfs", "/tmp"]
    else:
        command += ["--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = os.path.realpath(f"/{link}")
        if target.startswith("/usr/"):
            command += ["--symlink", target.lstrip("/"), f"/{link}"]
        elif os.path.isdir(target):
            command += ["--ro-bind", target, f"/{link}"]
    for root in _readonly_roots():
        command += ["--ro-bind", root, root]
    # Only /tmp and /dev/shm stay writable: bubblewrap's own / and /dev are unlimited tmpfs.
    command += ["--remount-ro", "/dev", "--remount-ro", "/"]
    command += ["--chdir", "/tmp", "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "MPLBACKEND", "Agg", "--setenv", "RESNET_SANDBOX_PIDNS", "1",
                "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MXNET_ENGINE_TYPE", "NaiveEngine",
                "--setenv", "PYTHONPATH", str(PACKAGE_DIR.parent)]
    return command


def caveats(sandbox, cgroup):
    """What the isolation does not cover on this machine, in sentences for the instructor."""
    said = []
    if not sandbox:
        said.append("no sandbox: submissions can read and write what this user can, and use the network; "
                    "their files are capped only in size (64 MiB each)")
    elif not _bwrap_caps_tmpfs():
        said.append("this bubblewrap cannot size a tmpfs (--size and --disable-userns need 0.8 or newer): "
                    "the sandbox's /tmp is not capped")
    if cgroup is None and os.getuid() == 0:
        said.append("processes are not capped: the kernel exempts root from RLIMIT_NPROC and no pids cgroup "
                    "could be made; run the grader as an ordinary user")
    return said


class Worker:
    def __init__(self, sandbox, disk_bytes=Limits.disk_bytes, processes=Limits.processes):
        self.sandbox = sandbox
        self.disk_bytes, self.processes = disk_bytes, processes
        self.tmp = tempfile.mkdtemp(prefix="resnet-grading-")  # its log; the job folders without the sandbox
        self.cgroup = PidsCgroup.create()
        self.process = None

    def start(self):
        python = [sys.executable, "-m", "autograder.sandboxed.worker",
                  *(module for modules in course.OBSERVER_MODULES.values() for module in modules)]
        env = None
        if self.sandbox:
            command = _bwrap_command(self.disk_bytes) + python
        else:
            command = python
            env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine",
                       PYTHONPATH=str(PACKAGE_DIR.parent))
        if self.cgroup:
            command = self.cgroup.wrap(command)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(os.path.join(self.tmp, "worker.log"), "ab"), env=env, text=True, bufsize=1,
                                        cwd=self.tmp, start_new_session=True)
        line = self.process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("the grading worker did not start (is the virtual environment complete?)")
        if self.cgroup:
            self.cgroup.allow(self.processes)
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
        if self.cgroup:
            self.cgroup.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Pool:
    """Run jobs on ``size`` warm workers, in parallel threads (the work happens in the workers)."""

    def __init__(self, size, sandbox=True, limits=None):
        limits = limits or Limits()
        self.workers = [Worker(sandbox, limits.disk_bytes, limits.processes) for _ in range(size)]
        self.caveats = caveats(sandbox, self.workers[0].cgroup if self.workers else None)
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
