"""Record verdicts with nbgrader: ``python -m autograder.grade.record COURSE_DIR ASSIGNMENT VERDICT_DIR DB_URL [LOCK]``.

The process started so is a *zygote*: it imports nbgrader, makes its Autograde
and GenerateFeedback converters and warms their caches once (about 2 s of
CPU), then forks one recorder per request. Its stdin is one end of a Unix
socket pair: each request carries, as ancillary data (SCM_RIGHTS), one end of
a new socket pair, and the zygote answers with the recorder's pid. A recorder
starts warm, without paying for those 2 s again; the zygote itself never
records, so no recorder inherits a database connection or another student's
state.

A recorder reads, one per line on its socket, a student whose verdict file
and submitted notebook are in place; it runs nbgrader's own Autograde
converter (with ApplyVerdicts in place of its executor, see
nbgrader_config.py) and then its GenerateFeedback converter for that student
alone, and answers one line: ``ok`` or ``failed`` (nbgrader refused the
submission), the student id, and the seconds each converter took, waits for
the lock left out (for the benches).

Several recorders run side by side (``recording.py``): nbgrader
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
import signal
import socket
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


_ENGINES = {}  # (url, options) -> the engine every gradebook of this recorder uses


def _commit_without_waiting_for_the_disk(dbapi_connection, _):
    """SQLite in WAL mode: a commit goes to the log without a sync (see gradebook.use_write_ahead_log).
    Not in rollback-journal mode, where that setting could corrupt the file on a power cut."""
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _one_engine_per_database():
    """Let the many gradebooks nbgrader opens per notebook share one SQLAlchemy engine per database.

    Each ``nbgrader.api.Gradebook`` makes its own engine, connects, checks that every table exists
    and disposes of the engine when closed: a dozen times per notebook (its converters and
    preprocessors each open one). Into PostgreSQL that is a dozen new server processes, each with
    cold caches, and about 200 queries per notebook. In this long-lived recorder the engine made
    first for a database serves every later gradebook, its connections go back to its pool when a
    gradebook closes, and the tables are checked once. nbgrader's own code writes the same rows."""
    import nbgrader.api as api
    from sqlalchemy import event

    engines, checked = _ENGINES, set()
    make_engine, create_all = api.create_engine, api.Base.metadata.create_all

    def shared_engine(url, **options):
        key = (str(url), tuple(sorted(options.items())))
        if key not in engines:
            engine = engines[key] = make_engine(url, **options)
            if str(url).startswith("sqlite"):
                event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
            engine.dispose = lambda *args, **kwargs: None  # closing a gradebook returns its connection
        return engines[key]

    def create_all_once(bind=None, **options):
        if id(bind) not in checked:
            create_all(bind=bind, **options)
            checked.add(id(bind))

    api.create_engine, api.Base.metadata.create_all = shared_engine, create_all_once


def main(course_dir, assignment, verdict_dir, db_url, lock=""):
    """Warm up, then fork a recorder for each request on the socket that is stdin (see the module's docstring)."""
    os.nice(NICENESS)
    os.environ["RESNET_VERDICTS"] = str(verdict_dir)
    _one_engine_per_database()
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    coursedir = CourseDirectory(root=str(course_dir), config=config)
    coursedir.assignment_id, coursedir.db_url = assignment, db_url
    converters = [_warm(converter)(coursedir=coursedir, config=config).prepare()
                  for converter in (Autograde, GenerateFeedback)]
    _warm_caches(converters[1].exporter_class, converters[1].config,
                 os.path.join(course_dir, "source", assignment, f"{assignment}.ipynb"))
    control = socket.socket(fileno=0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the recorders are reaped as they end
    while True:
        try:
            request, fds, _, _ = socket.recv_fds(control, 64, 1)
        except OSError:
            return
        if not request or not fds:
            return  # the grader closed its end: no more recorders
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _ENGINES.clear()  # (none is made before the first student; were one made, never share it)
            _record(socket.socket(fileno=fds[0]), coursedir, converters, lock)
            # Every student's rows are committed and answered: end without Python's teardown of
            # nbgrader, nbconvert and SQLAlchemy's modules (about half a second).
            os._exit(0)
        os.close(fds[0])
        control.sendall(f"{pid}\n".encode())


def _record(channel, coursedir, converters, lock):
    """Record each student named on ``channel`` until the grader closes its end."""
    from nbgrader.converters.base import NbGraderException

    requests, answers = channel.makefile("r"), channel.makefile("w")
    for line in requests:
        student = line.strip()
        if not STUDENT_ID.match(student):
            print(f"failed {student or '-'} 0 0", file=answers, flush=True)
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
        print(f"{'ok' if ok else 'failed'} {student} {seconds[0]:.4f} {seconds[1]:.4f}", file=answers, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
    os._exit(0)
