"""Restoring one file in a child process, under a time and a memory limit.

Restoring parses what a student sent. In the grader's own process a file
made to be expensive (a code cell that makes ``ast`` take gigabytes, JSON
that exhausts the recursion limit, thousands of pasted cells) could stall
every student's grading or take the instructor's memory. So both front
doors (the batch grader's intake and nbgrader's ``RestoreSubmission``)
restore each file in a child process (``_child``), which sets ``RLIMIT_AS``
and ``RLIMIT_CPU`` on itself before it reads the file and is killed after
``Limits.wall_seconds``. Whatever happens to the child, the file gets a
one-line reason and the caller goes on.

The children are forked from one server process (``_serve``), started with
the first file, that imported nbformat and the restoring code once: a child
starts in milliseconds, where a fresh Python that imports them costs about
half a second per file. The server is single-threaded and holds no
student's data (each child reads only its own request); the grader talks to
it over a pipe, one line per message, and it kills a child when asked.
"""
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from .restore import Unusable

PACKAGE_ROOT = Path(__file__).resolve().parents[3]   # where the server imports ``autograder`` from
SERVER = "from autograder.grade.intake.limited import _serve; _serve()"


class LimitExceeded(Unusable):
    """Restoring the file went over a limit: on a busy machine a retry may succeed."""


@dataclass(frozen=True)
class Limits:
    """What restoring one file may use; a course notebook needs well under a second and 200 MiB."""
    wall_seconds: float = 120
    cpu_seconds: int = 60
    memory_bytes: int = 2 << 30


class _ForkServer:
    """The grader's end of the server: ``run(request)`` forks a child for it and returns its exit code."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(PACKAGE_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        self._process = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._lock = threading.Lock()
        self._waiting = {}   # request id -> [threading.Event, exit code]
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def alive(self):
        return self._process.poll() is None

    def _send(self, message):
        with self._lock:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()

    def _read(self):
        for line in self._process.stdout:
            try:
                ident, code = (int(n) for n in line.split())
            except ValueError:
                continue  # not one of the server's lines
            with self._lock:
                slot = self._waiting.pop(ident, None)
            if slot:
                slot[1] = code
                slot[0].set()
        with self._lock:  # the server ended: its children die with it (see _child)
            for slot in self._waiting.values():
                slot[1] = None
                slot[0].set()
            self._waiting.clear()

    def run(self, request, wall_seconds):
        """The child's exit code (minus the signal that ended it); None if the server died;
        TimeoutError (the child killed) after ``wall_seconds``."""
        if not self.alive():
            return None
        slot = [threading.Event(), None]
        with self._lock:
            ident, self._next = self._next, self._next + 1
            self._waiting[ident] = slot
        try:
            self._send({"id": ident, "request": request})
        except OSError:
            return None
        if not slot[0].wait(wall_seconds):
            try:
                self._send({"kill": ident})
            except OSError:
                pass  # the server is gone, and its children were killed with it
            slot[0].wait(10)
            raise TimeoutError
        return slot[1]


_server, _starting = None, threading.Lock()


def _fork_server():
    global _server
    with _starting:
        if _server is None or not _server.alive():
            _server = _ForkServer()
        return _server


def restore_limited(path, release, sources, assignment, limits=Limits()):
    """(notebook, notes) for the file at ``path``, restored in a limited child; or raise Unusable.

    ``release``: this assignment's release notebook (a path); ``sources``: {assignment: source
    notebook path} of every assignment."""
    return restore_limited_as_text(path, release, sources, assignment, limits)[:2]


def restore_limited_as_text(path, release, sources, assignment, limits=Limits()):
    """(notebook, notes, text): :func:`restore_limited` and the notebook as nbformat writes it to a
    file (what the child wrote: the batch grader keys and saves it without writing it again)."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="restore-") as scratch:
        result, log = Path(scratch) / "result.json", Path(scratch) / "stderr.txt"
        request = {"path": str(path), "release": str(release), "sources": {a: str(p) for a, p in sources.items()},
                   "assignment": assignment, "limits": asdict(limits), "result": str(result), "log": str(log)}
        try:
            code = _fork_server().run(request, limits.wall_seconds)
        except TimeoutError:
            raise LimitExceeded(f"not gradable: restoring it took longer than {limits.wall_seconds:g} s") from None
        if not result.exists():
            if code is None:  # not the file's doing: not remembered as refused, the next run tries again
                raise LimitExceeded("not gradable this time: the process restoring it was lost (grade again)")
            if code in (-signal.SIGXCPU, -signal.SIGKILL):
                raise LimitExceeded(f"not gradable: restoring it took more than {limits.cpu_seconds} s of CPU")
            said = log.read_text(errors="replace") if log.exists() else ""
            raise Unusable(_too_much_memory(limits) if "MemoryError" in said else
                           f"could not be restored (the restoring process ended with code {code})")
        answer = json.loads(result.read_text())
    if "reason" in answer:
        raise Unusable(answer["reason"])
    # Written by nbformat's writer in the child, on the release's skeleton: read back as it is.
    text = answer["notebook"]
    return nbformat.v4.reads(text), answer["notes"], text if text.endswith("\n") else text + "\n"


_COURSE_NOTEBOOKS = {}  # path -> ((mtime, size), notebook): the course's own notebooks, read by the server


def _course_notebook(path):
    """The course's release or source notebook at ``path``, read once by the server before it forks,
    so that every child has it without reading and validating it again (a third of a file's cost);
    the path itself when it cannot be read (the child then says what is wrong)."""
    try:
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if _COURSE_NOTEBOOKS.get(path, (None,))[0] != stamp:
            import nbformat
            _COURSE_NOTEBOOKS[path] = (stamp, nbformat.read(path, as_version=4))
        return _COURSE_NOTEBOOKS[path][1]
    except Exception:  # noqa: BLE001 (the server must not fail: the child reads the path and reports)
        return path


def _serve():
    """The fork server: per request line, fork a child that restores the file; per ended child,
    one line ``<id> <exit code>`` (minus the signal). Ends, killing its children, when its input ends."""
    import nbformat  # noqa: F401 (imported once, before any fork)

    from . import restore  # noqa: F401
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children, pending = {}, b""   # pid -> request id
    server = os.getpid()
    while True:
        try:
            ready, _, _ = select.select([0, wakeup_r], [], [])
        except InterruptedError:
            continue
        if wakeup_r in ready:
            os.read(wakeup_r, 4096)
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                os.write(1, f"{children.pop(pid)} {os.waitstatus_to_exitcode(status)}\n".encode())
        if 0 in ready:
            data = os.read(0, 1 << 16)
            if not data:
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "kill" in message:
                    for pid, ident in children.items():
                        if ident == message["kill"]:
                            os.kill(pid, signal.SIGKILL)
                    continue
                request = message["request"]
                course = {"release": _course_notebook(request["release"]),
                          "sources": {a: _course_notebook(p) for a, p in request["sources"].items()}}
                pid = os.fork()
                if pid == 0:
                    code = 70
                    try:
                        _die_with(server)
                        _child(request, course)
                        code = 0
                    except BaseException:
                        traceback.print_exc()  # into the child's log, which the grader reads
                    finally:
                        os._exit(code)
                children[pid] = message["id"]


def _too_much_memory(limits):
    return f"not gradable: restoring it needs more than {limits.memory_bytes >> 20} MiB of memory"


def _die_with(server):
    """Be killed when the server ends (SIGKILLed, say), rather than run on unwatched."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server:  # it ended before the line above
        os._exit(71)


def _child(request, course):
    """In the forked child: limits first, then the file; what it prints goes to a log, not the grader's
    terminal. ``course``: the release and source notebooks (read by the server, or their paths)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd in (0, 1, 2):
        os.dup2(log, fd)
    os.close(log)
    limits = Limits(**request["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    import nbformat

    from .restore import load_submission
    sources = course["sources"]
    try:
        nb, notes = load_submission(request["path"], course["release"], sources[request["assignment"]],
                                    sources, assignment=request["assignment"])
        # Built on the release's skeleton: nbformat's writer without its validation, which would only
        # log what it found (into this child's log) and write the same text.
        answer = {"notebook": nbformat.v4.writes(nb), "notes": notes}
    except Unusable as error:
        answer = {"reason": error.reason}
    except MemoryError:
        answer = {"reason": _too_much_memory(limits)}
    Path(request["result"]).write_text(json.dumps(answer))
