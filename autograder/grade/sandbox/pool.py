"""The grader's side of the sandbox: a pool of warm workers, one per core.

Each worker runs ``autograder.sandboxed.worker`` inside bubblewrap
(``bwrap``), which gives it

* no network (a new, empty network namespace);
* a private view of the file system: ``/usr`` and Python read-only, of this
  package only ``SANDBOX_PATHS``, of ``/etc`` only ``ETC_FILES`` and a
  synthetic passwd and group, a size-limited, memory-backed ``/tmp``
  (``Limits.disk_bytes``) and ``/dev/shm`` (``SHM_BYTES``), everything else
  read-only; the course directory, the judges, the gradebook and other
  students' files are simply not there;
* when the grader is root, an unprivileged host user (``SANDBOX_USER``):
  bubblewrap is started through ``setpriv`` as that user, so what only root
  may read stays unreadable inside. Where that user is missing or cannot read
  a bound path, the sandbox maps to host root and ``caveats`` says so loudly;
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

A worker that dies (killed by a submission, or crashed), or that sends
anything the protocol does not allow (``Worker.run``: an exception while
reading, an unknown message, a second ``done``, output after ``done``, an
overlong line, silence past the time limit), is killed and replaced, never
reused, and the batch goes on; the submission it was running keeps what it
had recorded, and its outcome says why it stopped.
"""
import functools
import itertools
import json
import os
import pwd
import select
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import autograder
from autograder import course
from autograder.sandboxed import protocol

PACKAGE_DIR = Path(autograder.__file__).resolve().parent
SHM_BYTES = 64 << 20  # /dev/shm in the sandbox: enough for semaphores and small shared arrays
# The workers' MXNet: one thread per notebook, run in order (NaiveEngine), and its own convolutions
# rather than oneDNN's (MKLDNN). oneDNN compiles code for every new convolution shape, about 1 ms
# each, in every forked notebook process, and the observers build dozens of small blocks at
# freshly drawn sizes: about a third of a correct notebook's run. The outputs agree to float32
# rounding, within what the judges allow.
WORKER_ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MXNET_ENGINE_TYPE": "NaiveEngine",
              "MXNET_MKLDNN_ENABLED": "0", "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}
if (Path(sysconfig.get_paths()["stdlib"]) / "distutils" / "version.py").exists():
    # MXNet imports distutils; setuptools' stand-in for it imports setuptools and pkg_resources on the
    # way, about 0.15 s of every worker's start. Python 3.11's own does (3.12 has none).
    WORKER_ENV["SETUPTOOLS_USE_DISTUTILS"] = "stdlib"


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
    reason: str = None   # None, "timeout", "too much output", "worker died", ... (trusted.STOPPED)
    exit: int = 0
    forged: list = field(default_factory=list)  # [(cell, part)]: results the notebook wrote itself


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


# The package paths bound into the sandbox: the student runtime and autograder/sandboxed/ (the worker
# and the hidden parts' observers), nothing of autograder/grade/ or autograder/assign/.
SANDBOX_PATHS = course.SANDBOX_PACKAGE_PATHS
# What the sandbox's /etc holds: what the dynamic loader, Python, MXNet and matplotlib read, and
# nothing else of the host's (no shadow, no ssh keys, no configuration with secrets in it).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf",
             "alternatives", "host.conf", "hosts", "mime.types")
# With a root grader, bubblewrap runs as this unprivileged host user (scripts/env.sh creates it).
SANDBOX_USER = "resnet-sandbox"
SANDBOX_UID = 1000  # the notebook's uid inside the sandbox
PASSWD = (f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/usr/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = f"sandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"
GRACE_SECONDS = 60  # past a job's wall-clock limit, for the worker's clean-up: then it is dead


def _readonly_roots():
    """Folders a worker needs to see: the system's programs and libraries and the Python installation."""
    roots = {"/usr", sys.prefix, sys.base_prefix}
    for path in sys.path:
        if path and os.path.isdir(path) and "site-packages" in path:
            roots.add(path)
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(roots)


def _bound_paths():
    """Every host path the sandbox binds, for the check that its user can read them."""
    etc = [f"/etc/{name}" for name in ETC_FILES if os.path.exists(f"/etc/{name}")]
    return [*_readonly_roots(), *(str(PACKAGE_DIR / path) for path in SANDBOX_PATHS), *etc,
            os.path.realpath(sys.executable)]


@functools.lru_cache(maxsize=None)
def sandbox_user():
    """((uid, gid), None) for the user bubblewrap runs as when the grader is root, or (None, why not).

    Not root: bubblewrap runs as the grader's own user, (None, None)."""
    if os.getuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return None, f"there is no user {SANDBOX_USER} (scripts/env.sh creates it)"
    if entry.pw_uid == 0 or not shutil.which("setpriv"):
        return None, f"cannot switch to {SANDBOX_USER} (needs setpriv and a user other than root)"
    # Every bound path must be readable by that user, or bubblewrap cannot bind it: ask as that user.
    script = 'for p; do [ -r "$p" ] || echo "$p"; done'
    check = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                            "/bin/sh", "-c", script, "sh", *_bound_paths()],
                           capture_output=True, text=True, cwd="/")
    unreadable = check.stdout.split()
    if check.returncode != 0 or unreadable:
        shown = ", ".join(unreadable[:3]) or check.stderr.strip()[:200]
        return None, f"{SANDBOX_USER} cannot read {shown} (make the virtual environment with scripts/make_venv.sh " \
                     "from a Python all users can read, e.g. /usr/bin/python3.11)"
    return (entry.pw_uid, entry.pw_gid), None


def _bwrap_command(disk_bytes, passwd_fd, group_fd):
    command = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
               "--cap-drop", "ALL", "--new-session", "--as-pid-1", "--proc", "/proc", "--dev", "/dev",
               "--mqueue", "/dev/mqueue"]
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
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            command += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    command += ["--ro-bind-data", str(passwd_fd), "/etc/passwd", "--ro-bind-data", str(group_fd), "/etc/group"]
    # The package: only the listed paths, on an empty folder (even where a bound site-packages holds it all).
    command += ["--tmpfs", str(PACKAGE_DIR)]
    for path in SANDBOX_PATHS:
        command += ["--ro-bind", str(PACKAGE_DIR / path), str(PACKAGE_DIR / path)]
    # Only /tmp and /dev/shm stay writable: bubblewrap's own / and /dev are unlimited tmpfs.
    command += ["--remount-ro", str(PACKAGE_DIR), "--remount-ro", "/dev", "--remount-ro", "/"]
    command += ["--chdir", "/tmp", "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "RESNET_SANDBOX_PIDNS", "1", "--setenv", "PYTHONPATH", str(PACKAGE_DIR.parent)]
    for name, value in WORKER_ENV.items():
        command += ["--setenv", name, value]
    return command


def caveats(sandbox, cgroup):
    """What the isolation does not cover on this machine, in sentences for the instructor."""
    said = []
    if not sandbox:
        said.append("no sandbox: submissions can read and write what this user can, and use the network; "
                    "their files are capped only in size (64 MiB each)")
    else:
        if not _bwrap_caps_tmpfs():
            said.append("this bubblewrap cannot size a tmpfs (--size and --disable-userns need 0.8 or newer): "
                        "the sandbox's /tmp is not capped")
        why_not = sandbox_user()[1]
        if why_not:
            said.append(f"THE SANDBOX RUNS AS HOST ROOT: {why_not}. Submissions cannot see the grader's files, "
                        "but a file bound into the sandbox is readable whatever its permissions")
    if cgroup is None and os.getuid() == 0:
        said.append("processes are not capped: the kernel exempts root from RLIMIT_NPROC and no pids cgroup "
                    "could be made; run the grader as an ordinary user")
    return said


class WorkerBroke(Exception):
    """The worker did something the protocol does not allow: it is stopped and never reused."""


class Worker:
    module = "autograder.sandboxed.worker"  # what it runs (python -m)

    def __init__(self, sandbox, disk_bytes=Limits.disk_bytes, processes=Limits.processes):
        self.sandbox = sandbox
        self.disk_bytes, self.processes = disk_bytes, processes
        self.tmp = tempfile.mkdtemp(prefix="resnet-grading-")  # its log; the job folders without the sandbox
        self.cgroup = PidsCgroup.create()
        self.process = None
        self.lines, self.waiting = None, []  # the worker's output: split by us, lines not yet read

    def start(self):
        python = [sys.executable, "-m", self.module,
                  *(module for modules in course.OBSERVER_MODULES.values() for module in modules)]
        env, data_fds = None, []
        if self.sandbox:
            for text in (PASSWD, GROUP):
                read_fd, write_fd = os.pipe()
                os.write(write_fd, text.encode())
                os.close(write_fd)
                data_fds.append(read_fd)
            command = _bwrap_command(self.disk_bytes, *data_fds) + python
            user = sandbox_user()[0]
            if user is not None:
                command = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *command]
        else:
            command = python
            env = dict(os.environ, **WORKER_ENV, PYTHONPATH=str(PACKAGE_DIR.parent))
        if self.cgroup:
            command = self.cgroup.wrap(command)
        try:
            with open(os.path.join(self.tmp, "worker.log"), "ab") as log:
                self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                                env=env, bufsize=0, cwd=self.tmp if env else "/",
                                                start_new_session=True, pass_fds=data_fds)
        finally:
            for fd in data_fds:
                os.close(fd)
        self.lines, self.waiting = protocol.LineReader(), []
        try:
            message = self._next_message(time.monotonic() + 300)
        except (WorkerBroke, protocol.ProtocolError, EOFError, OSError):
            message = None
        if message != ("ready", True):
            self.stop()
            raise RuntimeError("the grading worker did not start (is the virtual environment complete? "
                               f"see {os.path.join(self.tmp, 'worker.log')})")
        if self.cgroup:
            self.cgroup.allow(self.processes)

    def _next_message(self, deadline):
        """The worker's next message as (kind, payload); raises when it breaks the protocol or ends."""
        fd = self.process.stdout.fileno()
        while not self.waiting:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerBroke("it did not answer in time")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("the worker ended")
            self.waiting.extend(self.lines.feed(chunk))
        return protocol.check_from_worker(protocol.parse(self.waiting.pop(0)))

    def _quiet(self):
        """Whether the worker has said nothing since its last message (nothing waiting, not ended)."""
        fd = self.process.stdout.fileno()
        return not self.waiting and not self.lines.buffer and not select.select([fd], [], [], 0)[0]

    def _send(self, data, deadline):
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise WorkerBroke("it did not read its job")
            view = view[os.write(fd, view[:1 << 16]):]

    def run(self, job):
        """Run one job; the Outcome. Whatever goes wrong with the worker ends it here, and this job's Outcome says so."""
        if self.process is None or self.process.poll() is not None or not self._quiet():
            self.stop()  # it spoke out of turn after its last job, or ended: never reused
            self.start()
        workdir = (f"/tmp/job-{os.urandom(6).hex()}" if self.sandbox
                   else os.path.join(self.tmp, f"job-{os.urandom(6).hex()}"))
        public = {key: value for key, value in job.items() if key != "challenges"}
        probed = {part for cell in job["cells"] if cell["kind"] == "probe" for part, _ in cell["calls"]}
        secret = {part: job["challenges"][part] for part in probed}
        deadline = time.monotonic() + job["limits"]["wall_seconds"] + GRACE_SECONDS
        outcome = Outcome()
        try:
            # Two frames: the worker's helper forks the notebook's process between reading them.
            self._send(protocol.frame(json.dumps(dict(public, workdir=workdir)).encode())
                       + protocol.frame(json.dumps(secret).encode()), deadline)
            while True:
                kind, payload = self._next_message(deadline)
                if kind == "record":
                    outcome.records.append(payload)
                    continue
                if kind != "done":
                    raise protocol.ProtocolError(f"an unexpected {kind} message")
                if not self._quiet():
                    raise protocol.ProtocolError("output after its done message")
                outcome.reason, outcome.exit = payload["reason"], payload["exit"]
                outcome.forged = [tuple(key) for key in payload["forged"]]
                return outcome
        except (EOFError, BrokenPipeError):
            outcome.reason = "worker died"
        except WorkerBroke as error:
            outcome.reason = f"worker stopped: {error}"
        except Exception as error:  # noqa: BLE001 -- anything at all read from it: RecursionError, MemoryError, ...
            outcome.reason = f"worker stopped: it broke the protocol ({str(error)[:200] or type(error).__name__})"
        finally:
            if not self.sandbox:
                shutil.rmtree(workdir, ignore_errors=True)
        self.stop()
        return outcome

    def stop(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except OSError:
                pass
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
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
