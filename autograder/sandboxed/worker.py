"""The warm worker that runs inside the sandbox (``python -m autograder.sandboxed.worker``).

It imports MXNet, d2l, IPython and the course's checks once (about 2 s), then
serves jobs: for each submission it forks a child, which executes the
notebook's code cells in a fresh IPython shell and, at each graded cell,
*observes* the student's objects for the grader (see parts.py). Forking
skips the kernel start and the MXNet import that a Jupyter kernel per
notebook would pay.

Protocol: one JSON job per line on stdin; one JSON record per line on the
original stdout (``{"record": ...}`` while the child runs, then one
``{"done": ...}``). The child never holds the protocol's file descriptors.

Per child: its own session and process group, not dumpable (other processes
of the same user cannot read its memory), rlimits on address space, CPU
time, file size and the number of tasks it may start, a wall-clock limit
enforced here, and a fresh working directory. After each job every process
left in the sandbox except this worker is killed and reaped (the worker is
a child subreaper, so even detached background processes are found), and
the sandbox's /tmp is emptied, so the next submission gets the whole of it.
"""
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
MAX_RECORD_BYTES = 4_000_000
MAX_TEXT = 10_000
# Files and folders in the sandbox's tmpfs: each costs the host about 1 KiB of kernel memory that
# the size cap does not count, and a loop makes some 30,000 a second.
MAX_FILES = 10_000


def _prctl(option, value):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _warm_up(observer_modules):
    """Import everything a notebook of the course needs, before any fork."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import mxnet  # noqa: F401
    from mxnet import np, npx  # noqa: F401
    from d2l import mxnet as d2l  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401
    import importlib
    for module in observer_modules:
        importlib.import_module(module)


# ------------------------------------------------------------------ child

def _execute(job, out):
    """Run the job's cells; write one JSON record per line to ``out``."""
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
        out.write(json.dumps(record) + "\n")
        out.flush()

    for index, cell in enumerate(job["cells"]):
        if cell["kind"] == "probe":
            for part_name, variable in cell["calls"]:
                obj = shell.user_ns.get(variable)
                if obj is None:
                    observation = {"error": f"NameError (name '{variable}' is not defined)"}
                else:
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        observation = observe_safely(observers[part_name], obj, job["challenges"][part_name])
                emit({"cell": index, "part": part_name, "observation": observation})
            continue
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = shell.run_cell(cell["source"], store_history=False)
        error = result.error_in_exec or result.error_before_exec
        emit({"cell": index, "stdout": stdout.getvalue()[:MAX_TEXT], "stderr": stderr.getvalue()[:MAX_TEXT],
              "error": None if error is None else [type(error).__name__, str(error)[:500]]})


def _child(job, write_fd):
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
    os.closerange(3, write_fd)
    os.closerange(write_fd + 1, 1 << 16)
    out = os.fdopen(write_fd, "w")
    try:
        _execute(job, out)
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


def _run_job(job, send):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job, write_fd)
    os.close(write_fd)
    deadline = time.monotonic() + job["limits"]["wall_seconds"]
    state = {"buffer": b"", "received": 0, "reason": None}

    def take(chunk):
        state["received"] += len(chunk)
        if state["received"] > MAX_RECORD_BYTES:
            state["reason"] = "too much output"
            return
        *lines, state["buffer"] = (state["buffer"] + chunk).split(b"\n")
        for line in lines:
            try:
                send({"record": json.loads(line)})
            except ValueError:
                state["reason"] = "unreadable output"

    status, counted = None, time.monotonic()
    while state["reason"] is None:
        left = deadline - time.monotonic()
        if left <= 0:
            state["reason"] = "timeout"
            break
        if _in_sandbox_namespace() and time.monotonic() - counted > 0.25:
            counted = time.monotonic()
            if _files_in_scratch() > MAX_FILES:
                state["reason"] = "too many files"
                break
        ready, _, _ = select.select([read_fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            take(chunk)
            continue
        finished, code = os.waitpid(pid, os.WNOHANG)
        if finished:
            # The notebook is done, but processes it forked may hold the pipe open: take what it
            # wrote before it ended (all in the pipe's buffer by now), and do not wait for them.
            status = code
            os.set_blocking(read_fd, False)
            for _ in range(64):
                try:
                    chunk = os.read(read_fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                take(chunk)
            break
    os.close(read_fd)
    reason = state["reason"]
    if reason is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
    _kill_leftovers()
    if _in_sandbox_namespace():
        _empty("/tmp")  # the sandbox's own tmpfs: whatever the notebook wrote anywhere in it
    else:
        shutil.rmtree(job["workdir"], ignore_errors=True)
    exit_code = os.waitstatus_to_exitcode(status) if status else 0
    send({"done": {"reason": reason, "exit": exit_code}})


def main():
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing else may write into the protocol
    # In the sandbox this worker is the pid namespace's init, which the kernel shields from every
    # signal sent inside the sandbox that it has no handler for: so no handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    _warm_up(sys.argv[1:])

    def send(message):
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    send({"ready": True})
    for line in sys.stdin:
        if line.strip():
            _run_job(json.loads(line), send)


if __name__ == "__main__":
    main()
