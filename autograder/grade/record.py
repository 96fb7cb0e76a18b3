"""Record verdicts with nbgrader: ``python -m autograder.grade.record COURSE_DIR ASSIGNMENT VERDICT_DIR DB_URL [LOCK]``.

Each line read on stdin names one student whose verdict file and submitted
notebook are in place; the process runs nbgrader's own Autograde converter
(with ApplyVerdicts in place of its executor, see nbgrader_config.py) and
then its GenerateFeedback converter for that student alone, and answers one
line on stdout: ``ok`` or ``failed`` (nbgrader refused the submission), the
student id, and the seconds each converter took, waits for the lock left out
(for the benches).

Several of these processes run side by side (``recording.py``): nbgrader
records each student's rows on their own, so recorders of different students
do not meet in a PostgreSQL gradebook. A SQLite file takes one writer at a
time and answers a second one with "database is locked" rather than waiting
for it when both read first, so with ``LOCK`` (a file path) the gradebook
writes of Autograde are taken in turn under an exclusive ``flock`` on it; the
feedback pages, which only read the gradebook, are written side by side.
"""
import fcntl
import os
import re
import sys
import time
from contextlib import contextmanager

# Recorders yield the CPU to the sandbox workers, whose runs are what a batch waits for: while the
# workers warm up (MXNet) a recorder starts and warms its caches on what they leave, and in a batch
# recording catches up on the cores the workers leave.
NICENESS = 5
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # what intake gives; never a glob pattern for nbgrader


@contextmanager
def _exclusive(lock):
    if not lock:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _warm(converter_class):
    """``converter_class`` whose exporter, writer and preprocessors are made once, in ``prepare()``.

    nbgrader's ``start()`` makes them anew each time, and a new HTML exporter compiles its Jinja
    templates again: most of the cost of one student's feedback page. ``prepare()`` does what
    nbgrader's ``start()`` does before converting (and compiles the templates) when the recorder
    starts, while the sandbox warms up; ``start()`` then converts the notebooks of the student the
    course directory names now, as nbgrader's does."""
    from nbconvert.exporters import TemplateExporter
    from nbconvert.writers import FilesWriter

    class Warm(converter_class):
        def prepare(self):
            self.writer = FilesWriter(parent=self, config=self.config)
            self.exporter = self.exporter_class(parent=self, config=self.config)
            for preprocessor in self.preprocessors:
                self.exporter.register_preprocessor(preprocessor)
            if isinstance(self.exporter, TemplateExporter):
                self.exporter.template  # noqa: B018 (loads and compiles the templates)
            return self

        def start(self):
            self.init_notebooks()
            here = os.getcwd()
            os.chdir(self.coursedir.root)
            try:
                self.convert_notebooks()
            finally:
                os.chdir(here)

    Warm.__name__ = converter_class.__name__
    return Warm


def _warm_caches(exporter_class, config, source):
    """Render the assignment's source notebook once with the course's HTML exporter, in memory.

    A recorder's first page otherwise pays for what nbconvert, Pygments, mistune, bleach and
    nbformat's validator load or compile on first use (about a second); doing it here, while
    the sandbox warms up, takes that off the first student's path. Nothing is written."""
    import nbformat

    try:
        nb = nbformat.read(source, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:  # rendered as plain cells: the page's grade fields come from the gradebook
            cell.metadata.pop("nbgrader", None)
        exporter_class(config=config).from_notebook_node(nb, resources={"nbgrader": {
            "notebook": "warm-up", "score": 0, "max_score": 0, "late_penalty": 0}})
    except Exception:  # noqa: BLE001 (warming is best effort: grading itself reports real errors)
        pass


def _one_engine_per_database():
    """Let the many gradebooks nbgrader opens per notebook share one SQLAlchemy engine per database.

    Each ``nbgrader.api.Gradebook`` makes its own engine, connects, checks that every table exists
    and disposes of the engine when closed: a dozen times per notebook (its converters and
    preprocessors each open one). Into PostgreSQL that is a dozen new server processes, each with
    cold caches, and about 200 queries per notebook. In this long-lived recorder the engine made
    first for a database serves every later gradebook, its connections go back to its pool when a
    gradebook closes, and the tables are checked once. nbgrader's own code writes the same rows."""
    import nbgrader.api as api

    engines, checked = {}, set()
    make_engine, create_all = api.create_engine, api.Base.metadata.create_all

    def shared_engine(url, **options):
        key = (str(url), tuple(sorted(options.items())))
        if key not in engines:
            engine = engines[key] = make_engine(url, **options)
            engine.dispose = lambda *args, **kwargs: None  # closing a gradebook returns its connection
        return engines[key]

    def create_all_once(bind=None, **options):
        if id(bind) not in checked:
            create_all(bind=bind, **options)
            checked.add(id(bind))

    api.create_engine, api.Base.metadata.create_all = shared_engine, create_all_once


def main(course_dir, assignment, verdict_dir, db_url, lock=""):
    os.nice(NICENESS)
    os.environ["RESNET_VERDICTS"] = str(verdict_dir)
    _one_engine_per_database()
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    coursedir = CourseDirectory(root=str(course_dir), config=config)
    coursedir.assignment_id, coursedir.db_url = assignment, db_url
    converters = [_warm(converter)(coursedir=coursedir, config=config).prepare()
                  for converter in (Autograde, GenerateFeedback)]
    _warm_caches(converters[1].exporter_class, converters[1].config, os.path.join(course_dir, "source", assignment, f"{assignment}.ipynb"))
    for line in sys.stdin:
        student = line.strip()
        if not STUDENT_ID.match(student):
            print(f"failed {student or '-'} 0 0", flush=True)
            continue
        coursedir.student_id = student
        ok, seconds = True, []
        for converter, guard in zip(converters, (_exclusive(lock), _exclusive(None))):
            with guard:
                start = time.perf_counter()  # the time nbgrader takes, not the wait for the lock
                try:
                    converter.start()
                except NbGraderException:
                    ok = False
                seconds.append(time.perf_counter() - start)
        print(f"{'ok' if ok else 'failed'} {student} {seconds[0]:.4f} {seconds[1]:.4f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
    # Every student's rows are committed and answered: end without Python's teardown of nbgrader,
    # nbconvert and SQLAlchemy's modules (about half a second the grader would wait for).
    os._exit(0)
