"""Plain ``nbgrader autograde`` on this course runs the batch grader's trusted pipeline.

nbgrader_config.py puts two preprocessors into nbgrader's own Autograde
converter, so that ``nbgrader autograde`` and ``python -m autograder grade``
are two front doors to one grading path and give the same verdicts:

* :class:`RestoreSubmission`, first in the *sanitize* stage: the submitted
  file is rebuilt on the release's skeleton by the batch grader's intake
  (``intake/restore.py``) before nbgrader's OverwriteCells and
  CheckCellMetadata look at it. Stock nbgrader gives a notebook whose cell
  metadata Colab stripped 0 points and silently drops a deleted test cell's
  points; here both are repaired (and logged), and a file that cannot be
  graded (empty, not a notebook, another assignment's) is refused with its
  reason in nbgrader's error log.
* :class:`TrustedExecute`, in place of nbgrader's Execute in the
  *autograde* stage: the notebook's code runs in a sandboxed warm worker
  (``sandbox/``; one per nbgrader command, reused for every notebook, and
  replaced, with a note on that notebook only, if it dies or breaks the
  grading protocol), its
  graded cells replaced by observers; this process judges the observations
  against a challenge drawn secretly for each notebook (``trusted.py``) and
  writes the verdicts into the notebook (``verdicts.apply_verdict``) for
  nbgrader's SaveAutoGrades. Student code never runs in nbgrader's process.

Without bubblewrap, TrustedExecute refuses to grade (every notebook fails
with that message) unless ``--TrustedExecute.sandbox=False`` is given, for
trusted notebooks only.
"""
import atexit
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Integer


class CannotGrade(Exception):
    """A notebook this command refuses to grade; nbgrader logs the message and goes on with the others."""


class RestoreSubmission(Preprocessor):
    """Replace the submitted notebook by its restoration on the release's skeleton."""

    enabled = True

    def preprocess(self, nb, resources):
        from nbgrader.coursedir import CourseDirectory

        from .. import course
        from .intake import Unusable, restore_limited

        info = resources["nbgrader"]
        assignment, notebook, student = info["assignment"], info["notebook"], info["student"]
        if notebook != assignment or assignment not in course.ASSIGNMENTS:
            raise CannotGrade(f"{student}: {notebook}.ipynb is not a notebook of this course "
                              f"(expected {'/'.join(f'{a}/{a}.ipynb' for a in course.ASSIGNMENTS)})")
        coursedir = CourseDirectory(config=self.config)
        release = Path(coursedir.format_path(coursedir.release_directory, ".", assignment)) / f"{assignment}.ipynb"
        if not release.exists():
            raise CannotGrade(f"{release} is missing: run `nbgrader generate_assignment {assignment} --force`")
        sources = {}
        for name in course.ASSIGNMENTS:
            path = Path(coursedir.format_path(coursedir.source_directory, ".", name)) / f"{name}.ipynb"
            if path.exists():
                sources[name] = path
        submitted = Path(resources["metadata"]["path"]) / f"{notebook}.ipynb"
        try:  # in a child process under a time and memory limit, as the batch grader restores
            restored, notes = restore_limited(submitted, release, sources, assignment)
        except Unusable as error:
            raise CannotGrade(f"{student}: cannot grade {submitted}: {error.reason}") from None
        for note in notes:
            self.log.warning("%s: %s", student, note)
        return restored, resources


class TrustedExecute(Preprocessor):
    """Run the notebook in the sandbox, judge it here and write the verdicts into its cells."""

    enabled = True
    timeout = Integer(180, help="wall-clock seconds per notebook").tag(config=True)
    cpu = Integer(300, help="CPU seconds per notebook").tag(config=True)
    memory = Integer(4096, help="memory limit per notebook, MiB").tag(config=True)
    processes = Integer(256, help="processes and threads a notebook may start").tag(config=True)
    disk = Integer(256, help="MiB a notebook may write to its private /tmp, held in memory").tag(config=True)
    sandbox = Bool(True, help="run in bubblewrap; False only for trusted notebooks (no isolation)").tag(config=True)

    def preprocess(self, nb, resources):
        from . import trusted
        from .verdicts import apply_verdict

        assignment, student = resources["nbgrader"]["assignment"], resources["nbgrader"]["student"]
        limits = self._limits()
        job = trusted.job(nb, assignment, _plan(assignment), trusted.draw_challenges(assignment), limits)
        verdict = trusted.verdicts(nb, assignment, job, _pool(self.sandbox, self.log, limits).run(job))
        if verdict["note"]:
            self.log.warning("%s: %s", student, verdict["note"])
        return apply_verdict(nb, verdict), resources

    def _limits(self):
        from .sandbox.pool import Limits
        return Limits(wall_seconds=self.timeout, cpu_seconds=self.cpu, memory_bytes=self.memory << 20,
                      processes=self.processes, disk_bytes=self.disk << 20)


# One nbgrader command, one worker and one plan of the graded cells per assignment, kept across its
# notebooks; the secret challenge is drawn afresh for each notebook.
_state = {"pool": None, "plan": {}}


def _plan(assignment):
    from . import trusted
    if assignment not in _state["plan"]:
        _state["plan"][assignment] = trusted.plan(assignment)
    return _state["plan"][assignment]


def _pool(sandbox, log, limits):
    from .sandbox.pool import Pool, bwrap_available
    if _state["pool"] is None:
        if sandbox and not bwrap_available():
            raise CannotGrade("bubblewrap (bwrap) is not available, so student code cannot be isolated: "
                              "install it (apt-get install bubblewrap), or pass --TrustedExecute.sandbox=False "
                              "for trusted notebooks only")
        if not sandbox:
            log.warning("grading WITHOUT the sandbox: no file-system or network isolation")
        pool = Pool(1, sandbox=sandbox, limits=limits)
        for caveat in pool.caveats:
            log.warning("%s", caveat)
        atexit.register(pool.close)
        pool.start()
        _state["pool"] = pool
    return _state["pool"]
