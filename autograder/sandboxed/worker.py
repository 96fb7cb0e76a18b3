"""The warm worker that runs inside the sandbox (``python -m autograder.sandboxed.worker``).

It imports MXNet, d2l, IPython and the course's checks once (about 2 s), then
serves jobs: for each submission it forks a child, which executes the
notebook's code cells in a fresh IPython shell and, at each graded cell,
*observes* the student's objects for the grader (see parts.py). Forking
skips the kernel start and the MXNet import that a Jupyter kernel per
notebook would pay.

Processes, per job: this worker (the sandbox's pid 1) never reads a job. It
forks a *helper*, which reads the job, forks the notebook's *child*, and
only then reads the challenges; the helper relays the child's records and
ends with the job. So each child starts from a memory that never held a
secret, another notebook's code or another notebook's results.

Protocol (see protocol.py): from the grader, on stdin, two frames per job:
the job (the cells, observer module names, limits) and then the challenges
of its graded cells. To the grader, on the original stdout, one JSON line per
message: ``{"ready": true}`` once, then per job ``{"record": ...}`` lines and
one ``{"done": {"reason", "exit", "forged"}}``. Between child and helper: the
child writes ``{"probe": cell}`` at a graded cell and reads that cell's
challenges from a second pipe; it writes one observation per part of the
cell and waits for an empty frame on that pipe (the results reached the
grader), and it writes one output record per other code cell. The helper checks every
line (size, depth, fields, UTF-8) and the order (see :class:`Session`):
a notebook whose own code writes into the channel is stopped, and the parts
it wrote for fail.

Per child: its own session and process group, not dumpable (other processes
of the same user cannot read its memory), rlimits on address space, CPU
time, file size and the number of tasks it may start, a wall-clock limit
and caps on SysV shared memory, semaphores and files enforced by the helper,
and a fresh working directory. After each job every process left in the
sandbox except this worker is killed and reaped (the worker is a child
subreaper, so even detached background processes are found); the sandbox's
/tmp and /dev/shm are emptied and its SysV IPC objects and POSIX message
queues removed, so the next submission gets all of them, empty.
"""
import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

from . import protocol

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
MAX_RECORD_BYTES = 4_000_000
MAX_TEXT = 10_000
# Files and folders in the sandbox's tmpfs: each costs the host about 1 KiB of kernel memory that
# the size cap does not count, and a loop makes some 30,000 a second.
MAX_FILES = 10_000
# SysV semaphores: each costs the host kernel memory that no size cap counts.
MAX_SEMAPHORES = 4096
EXIT_NO_MORE_JOBS = 3  # the helper found the grader's end of the pipe closed


def _prctl(option, value):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# MXNet imports these when they are installed, for features no graded cell uses: scikit-learn for its
# old FeedForward model's base class, scipy.stats for entropy calibration in quantization. Together
# about 0.25 s of every worker's start; a notebook that imports either gets it as usual.
OPTIONAL_FOR_MXNET = ("sklearn", "scipy.stats")


@contextlib.contextmanager
def _unavailable(modules):
    """Importing ``modules`` raises ImportError meanwhile (Python's own way: None in sys.modules)."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _warm_up(observer_modules):
    """Import everything a notebook of the course needs, before any fork."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    with _unavailable(OPTIONAL_FOR_MXNET):
        import mxnet  # noqa: F401
    from mxnet import np, npx  # noqa: F401
    from d2l import mxnet as d2l  # noqa: F401
    import importlib
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config
    # The shell every notebook runs in, made once (about 20 ms of CPU per notebook otherwise): each
    # child gets its own copy by the fork, in which no cell has run. No history: it would be a file
    # in the sandbox's home that one notebook writes and the next one's shell holds open.
    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.instance(config=config)
    from ..student import lazy_mxnet
    for module in observer_modules:
        importlib.import_module(module)
    from . import shape_inference
    shape_inference.install()
    lazy_mxnet.load()  # the checks' MXNet names and stand-ins, bound before any notebook runs


# ------------------------------------------------------------------ child

def _execute(job, out, answers):
    """Run the job's cells; write one JSON record per line to ``out``, read challenges from ``answers``."""
    import contextlib
    import importlib
    import io
    from IPython.core.interactiveshell import InteractiveShell
    from ..student.parts import observe_safely

    # Bind each part's observer before any student code runs; what the code patches later
    # can only make its own observations wrong, never a verdict right (the judge is elsewhere).
    # (The modules were imported before the fork, by _warm_up: nothing slow is imported here.)
    observers = {name: observe for module in job["observer_modules"]
                 for name, observe in importlib.import_module(module).OBSERVERS.items()}
    shell = InteractiveShell.instance()
    shell.showtraceback = lambda *a, **k: None

    def emit(record):
        # What the student's code printed may hold lone surrogates: sent as "?" rather than refused.
        out.write(json.dumps(record, ensure_ascii=False).encode("utf-8", "replace") + b"\n")
        out.flush()

    for index, cell in enumerate(job["cells"]):
        if cell["kind"] == "probe":
            # The challenges exist in this process only from here on: the worker answers this
            # request once, for this cell, and only when it is the next graded cell.
            emit({"probe": index})
            challenges = json.loads(protocol.read_frame(answers))
            for part_name, variable in cell["calls"]:
                obj = shell.user_ns.get(variable)
                if obj is None:
                    observation = {"error": f"NameError (name '{variable}' is not defined)"}
                else:
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        observation = observe_safely(observers[part_name], obj, challenges[part_name])
                emit({"cell": index, "part": part_name, "observation": observation})
            # Wait until the worker has passed them on: what the notebook does next (kill the
            # helper, say) cannot lose this cell's results.
            protocol.read_frame(answers)
            continue
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = shell.run_cell(cell["source"], store_history=False)
        error = result.error_in_exec or result.error_before_exec
        emit({"cell": index, "stdout": stdout.getvalue()[:MAX_TEXT], "stderr": stderr.getvalue()[:MAX_TEXT],
              "error": None if error is None else [type(error).__name__, str(error)[:500]]})


def _child(job, write_fd, answer_fd):
    os.setsid()
    _prctl(PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    limits = job["limits"]
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    # The kernel counts RLIMIT_NPROC over all tasks of the user in this user namespace: in the
    # sandbox, the sandbox's own; without it, all the user's. It does not apply to root.
    tasks, hard = _tasks_of(os.getuid()) + limits["processes"], resource.getrlimit(resource.RLIMIT_NPROC)[1]
    tasks = tasks if hard == resource.RLIM_INFINITY else min(tasks, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    workdir = job["workdir"]
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    keep = sorted((write_fd, answer_fd))
    os.closerange(3, keep[0])
    os.closerange(keep[0] + 1, keep[1])
    os.closerange(keep[1] + 1, 1 << 16)
    out = os.fdopen(write_fd, "wb")
    try:
        _execute(job, out, answer_fd)
        out.close()
        os._exit(0)
    except BaseException:
        os._exit(70)


# ----------------------------------------------------------------- worker

def _tasks_of(uid):
    """Processes and threads of ``uid`` that this process can see."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _kill_leftovers(seconds=10):
    """Kill and reap every process the notebook left (the worker, a child subreaper, inherits them all)."""
    me = os.getpid()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _in_sandbox_namespace():
            try:
                # Everything in the sandbox but this worker and its init, in one step a fork loop cannot outrun.
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        else:
            for pid in _children(me):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if not _reap():
            return
        time.sleep(0.01)


def _children(parent):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _in_sandbox_namespace():
    """In a fresh pid namespace every visible process is ours to kill."""
    return os.environ.get("RESNET_SANDBOX_PIDNS") == "1"


def _reap():
    """Reap what has exited; whether any child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _files_in_scratch():
    used = 0
    for folder in ("/tmp", "/dev/shm"):
        stat = os.statvfs(folder)
        used += stat.f_files - stat.f_ffree
    return used


def _empty(folder):
    """Remove everything in ``folder``, also what the notebook made unwritable (it owned it)."""
    def unlock(function, path, _):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass
    os.chmod(folder, 0o1777)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, onerror=unlock)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


# ------------------------------------------------------------ shared memory

def _ipc_objects(kind):
    """The SysV IPC objects of ``kind`` ("shm", "sem", "msg") in this IPC namespace, as {column: value}."""
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            header, *rows = f.read().splitlines()
    except OSError:
        return []
    names = header.split()
    return [dict(zip(names, row.split())) for row in rows if row.strip()]


def _sysv_bytes():
    """Memory the notebook holds in SysV shared memory segments and message queues."""
    return (sum(int(row["size"]) for row in _ipc_objects("shm"))
            + sum(int(row["cbytes"]) for row in _ipc_objects("msg")))


def _semaphores():
    return sum(int(row["nsems"]) for row in _ipc_objects("sem"))


def _remove_ipc():
    """Remove every SysV segment, semaphore set and message queue, and every POSIX queue, of the sandbox.

    The sandbox has its own IPC namespace, so all of them are the last notebook's."""
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_RMID = 0
    for row in _ipc_objects("shm"):
        libc.shmctl(int(row["shmid"]), IPC_RMID, None)
    for row in _ipc_objects("sem"):
        libc.semctl(int(row["semid"]), 0, IPC_RMID, 0)
    for row in _ipc_objects("msg"):
        libc.msgctl(int(row["msqid"]), IPC_RMID, None)
    if os.path.isdir("/dev/mqueue"):
        for name in os.listdir("/dev/mqueue"):
            try:
                os.unlink(os.path.join("/dev/mqueue", name))
            except OSError:
                pass


def _shared_memory_cap():
    """The sandbox's /dev/shm size: SysV shared memory and message queues may use as much again."""
    stat = os.statvfs("/dev/shm")
    return stat.f_blocks * stat.f_frsize


# ------------------------------------------------------------ one job

class Forged(Exception):
    """The notebook wrote into the grader's channel what only the observers may write."""

    def __init__(self, what, parts=()):
        super().__init__(what)
        self.parts = list(parts)


class Session:
    """The protocol state of one notebook: which probe is open and what was recorded.

    The notebook's process and the observers in it share one pipe, so a record
    cannot say who wrote it; the order can. Each probe's challenges are given
    once, to the next probe in the notebook's order; an observation is accepted
    only for a part of the open probe, once. Anything else means the
    notebook's own code wrote into the channel. Once the open probe's last
    result has reached the grader, the child is told (an empty frame), and
    only then runs the next cell."""

    def __init__(self, job, challenges, answer_fd):
        self.cells, self.challenges, self.answer_fd = job["cells"], challenges, answer_fd
        self.probes = [i for i, cell in enumerate(self.cells) if cell["kind"] == "probe"]
        self.asked, self.open = 0, None
        self.recorded, self.outputs = set(), set()

    def _parts(self, position):
        cell = self.cells[position] if 0 <= position < len(self.cells) else {}
        return [part for part, _ in cell.get("calls", [])]

    def take(self, record):
        """The record to forward to the grader, or None; Forged or ProtocolError when it is not the protocol's."""
        kind = protocol.check_record(record)
        if kind == "probe":
            position = record["probe"]
            if self.asked >= len(self.probes) or position != self.probes[self.asked]:
                said = "asked again" if position in self.probes[:self.asked] else "asked out of order"
                raise Forged(f"the challenges of cell {position} were {said}",
                             [(position, part) for part in self._parts(position)])
            self.asked += 1
            self.open = position
            self._answer(json.dumps({part: self.challenges[part] for part in self._parts(position)}).encode())
            return None
        cell = record["cell"]
        if kind == "observation":
            key = (cell, record["part"])
            if key in self.recorded:
                raise Forged(f"a second result for {record['part']}", [key])
            if cell != self.open or record["part"] not in self._parts(cell):
                known = record["part"] in self._parts(cell)
                raise Forged(f"a result for {record['part'][:40]!r} outside its graded cell", [key] if known else [])
            self.recorded.add(key)
            return record
        if cell in self.outputs or not (0 <= cell < len(self.cells)) or self.cells[cell]["kind"] != "code":
            raise Forged(f"an output for cell {cell} that the notebook did not run there")
        self.outputs.add(cell)
        if self.open is not None and cell > self.open:
            self.open = None  # the graded cell is over once a later cell has run
        return record

    def forwarded(self, record):
        """After ``record`` reached the grader: when it was the open cell's last result, say so to the child."""
        if "part" in record and all((self.open, part) in self.recorded for part in self._parts(self.open)):
            self._answer(b"")

    def _answer(self, payload):
        try:  # a few hundred bytes into an empty pipe, unless the notebook's code stopped reading it
            written = os.write(self.answer_fd, protocol.frame(payload))
        except BlockingIOError:
            written = 0
        if written != len(payload) + 4:
            raise protocol.ProtocolError("the notebook's process does not read its challenges")


def _limit_exceeded(counted_files):
    """Why the notebook must stop now for what it holds in the sandbox's memory, or None."""
    if _sysv_bytes() > _shared_memory_cap():
        return "too much shared memory"
    if _semaphores() > MAX_SEMAPHORES:
        return "too many semaphores"
    if counted_files and _files_in_scratch() > MAX_FILES:
        return "too many files"
    return None


def _serve_one(protocol_fd):
    """Run one job (read from stdin) in a child and relay its records; the helper's exit code.

    This process is forked for the job and ends with it: the challenges it
    reads and the records it parses never reach the worker that forks the
    next notebook."""
    try:
        job = json.loads(protocol.read_frame(0))
    except EOFError:
        return EXIT_NO_MORE_JOBS
    records_r, records_w = os.pipe()
    answers_r, answers_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(records_r)
        os.close(answers_w)
        _child(job, records_w, answers_r)
    os.close(records_w)
    os.close(answers_r)
    os.set_blocking(answers_w, False)
    # Only now, with the notebook's process forked from a memory that never held them.
    challenges = json.loads(protocol.read_frame(0))
    session, lines = Session(job, challenges, answers_w), protocol.LineReader()
    deadline = time.monotonic() + job["limits"]["wall_seconds"]
    state = {"received": 0, "reason": None, "forged": []}

    def send(message):
        os.write(protocol_fd, protocol.dump(message))

    def take(chunk):
        state["received"] += len(chunk)
        if state["received"] > MAX_RECORD_BYTES:
            state["reason"] = "too much output"
            return
        try:
            for line in lines.feed(chunk):
                forward = session.take(protocol.parse(line))
                if forward is not None:
                    send({"record": forward})
                    session.forwarded(forward)
        except Forged as forged:
            state["reason"] = f"forged: {forged}"
            state["forged"] = [list(key) for key in forged.parts]
        except protocol.ProtocolError as error:
            state["reason"] = f"invalid output: {error}"

    status, counted = None, 0.0
    sandboxed = _in_sandbox_namespace()
    while state["reason"] is None:
        left = deadline - time.monotonic()
        if left <= 0:
            state["reason"] = "timeout"
            break
        if sandboxed:
            now = time.monotonic()
            state["reason"] = _limit_exceeded(counted_files=now - counted > 0.25)
            counted = now if now - counted > 0.25 else counted
            if state["reason"]:
                break
        ready, _, _ = select.select([records_r], [], [], min(left, 0.05))
        if ready:
            chunk = os.read(records_r, 65536)
            if not chunk:
                break
            take(chunk)
            continue
        finished, code = os.waitpid(pid, os.WNOHANG)
        if finished:
            # The notebook is done, but processes it forked may hold the pipe open: take what it
            # wrote before it ended (all in the pipe's buffer by now), and do not wait for them.
            status = code
            os.set_blocking(records_r, False)
            for _ in range(64):
                try:
                    chunk = os.read(records_r, 65536)
                except BlockingIOError:
                    break
                if not chunk or state["reason"]:
                    break
                take(chunk)
            break
    if state["reason"] is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
    exit_code = os.waitstatus_to_exitcode(status) if status else 0
    send({"done": {"reason": state["reason"], "exit": exit_code, "forged": state["forged"]}})
    return 0


def _clean_up():
    """Leave nothing of the last notebook: processes, files, shared memory, IPC objects.

    (Without the sandbox only its processes: the grader removes its folder, and the host's
    /tmp, /dev/shm and IPC objects are not the notebook's alone.)"""
    _kill_leftovers()
    if _in_sandbox_namespace():
        # The sandbox's own tmpfs and IPC namespace: whatever the notebook made anywhere in them.
        _empty("/tmp")
        _empty("/dev/shm")
        _remove_ipc()


def main():
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # nothing else may write into the protocol
    # In the sandbox this worker is the pid namespace's init, which the kernel shields from every
    # signal sent inside the sandbox that it has no handler for: so no handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    if _in_sandbox_namespace():
        # Killed with bubblewrap, its parent, which the grader kills to stop it (this process is in a
        # session of its own, out of reach of that kill): otherwise it would go on until it read the end
        # of its input and then exit as Python and MXNet do, 0.6 to 2.5 s that a batch's end waits for.
        # (Without the sandbox its parent is a thread of the grader, which may end before it.)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _warm_up(sys.argv[1:])
    os.write(protocol_fd, protocol.dump({"ready": True}))
    # This process reads nothing of a job: a helper forked per job reads it, forks the notebook's
    # process and relays its records, then ends. So every notebook is forked from a memory that
    # holds no other notebook's code, challenges or results.
    while True:
        select.select([0], [], [])
        helper = os.fork()
        if helper == 0:
            code = 1
            try:
                code = _serve_one(protocol_fd)
            finally:
                os._exit(code)
        _, status = os.waitpid(helper, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_NO_MORE_JOBS:
            return
        _clean_up()
        if code != 0:
            # The notebook stopped the helper (a signal) before it said it was done: say it here.
            os.write(protocol_fd, protocol.dump({"done": {"reason": "grading process killed", "exit": code,
                                                          "forged": []}}))



if __name__ == "__main__":
    main()
