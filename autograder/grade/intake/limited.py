"""Restoring one file in a child process, under a time and a memory limit.

Restoring parses what a student sent. In the grader's own process a file
made to be expensive (a code cell that makes ``ast`` take gigabytes, JSON
that exhausts the recursion limit, thousands of pasted cells) could stall
every student's grading or take the instructor's memory. So both front
doors (the batch grader's intake and nbgrader's ``RestoreSubmission``)
restore each file in a child process (``_child``), which sets ``RLIMIT_AS`` and ``RLIMIT_CPU`` on itself before it reads the
file and is killed after ``Limits.wall_seconds``. Whatever happens to the
child, the file gets a one-line reason and the caller goes on.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .restore import Unusable

PACKAGE_ROOT = Path(__file__).resolve().parents[3]   # where the child imports ``autograder`` from
CHILD = 'import sys, json; from autograder.grade.intake.limited import _child; _child(json.loads(sys.argv[1]))'


class LimitExceeded(Unusable):
    """Restoring the file went over a limit: on a busy machine a retry may succeed."""


@dataclass(frozen=True)
class Limits:
    """What restoring one file may use; a course notebook needs well under a second and 200 MiB."""
    wall_seconds: float = 120
    cpu_seconds: int = 60
    memory_bytes: int = 2 << 30


def restore_limited(path, release, sources, assignment, limits=Limits()):
    """(notebook, notes) for the file at ``path``, restored in a limited child; or raise Unusable.

    ``release``: this assignment's release notebook (a path); ``sources``: {assignment: source
    notebook path} of every assignment."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="restore-") as scratch:
        result = Path(scratch) / "result.json"
        request = {"path": str(path), "release": str(release), "sources": {a: str(p) for a, p in sources.items()},
                   "assignment": assignment, "limits": asdict(limits), "result": str(result)}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(PACKAGE_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        try:
            done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(request)],
                                  env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            raise LimitExceeded(f"not gradable: restoring it took longer than {limits.wall_seconds:g} s") from None
        if not result.exists():
            if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                raise LimitExceeded(f"not gradable: restoring it took more than {limits.cpu_seconds} s of CPU")
            raise Unusable(_too_much_memory(limits) if "MemoryError" in done.stderr else
                           f"could not be restored (the restoring process ended with code {done.returncode})")
        answer = json.loads(result.read_text())
    if "reason" in answer:
        raise Unusable(answer["reason"])
    return nbformat.reads(answer["notebook"], as_version=4), answer["notes"]


def _too_much_memory(limits):
    return f"not gradable: restoring it needs more than {limits.memory_bytes >> 20} MiB of memory"


def _child(request):
    limits = Limits(**request["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    import nbformat

    from .restore import load_submission
    sources = request["sources"]
    try:
        nb, notes = load_submission(request["path"], request["release"], sources[request["assignment"]],
                                    sources, assignment=request["assignment"])
        answer = {"notebook": nbformat.writes(nb), "notes": notes}
    except Unusable as error:
        answer = {"reason": error.reason}
    except MemoryError:
        answer = {"reason": _too_much_memory(limits)}
    Path(request["result"]).write_text(json.dumps(answer))
