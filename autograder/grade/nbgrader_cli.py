"""Running real nbgrader commands in a course directory.

The course uses nbgrader's own command line rather than its internals, so
what the demo and the tests do is exactly what an instructor does by hand.
"""
import os
import subprocess
import sys


class NbgraderError(RuntimeError):
    pass


def nbgrader(course_dir, *args, quiet=True, env=None, on_log=None):
    """Run ``nbgrader ARGS`` with ``course_dir`` as the course directory.

    ``on_log``, if given, is called with each line of nbgrader's log as it comes (for progress)."""
    command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course_dir}"]
    # nbgrader calls `alembic` by name: the environment's scripts must be on PATH.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, **(env or {})}
    if on_log is None:
        done = subprocess.run(command, cwd=course_dir, capture_output=True, text=True, env=env)
    else:
        with subprocess.Popen(command, cwd=course_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) as process:
            log = []
            for line in process.stdout:
                log.append(line)
                on_log(line)
            done = subprocess.CompletedProcess(command, process.wait(), "", "".join(log))
    if done.returncode != 0:
        raise NbgraderError(f"`nbgrader {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")
    if not quiet:
        print(done.stdout, end="")
    return done
