"""Several graders, one gradebook: setting up a shared database one grader at a time.

nbgrader creates its tables, its course row and an assignment's graded cells
the first time a gradebook is opened or an assignment generated; two graders
(instructor and TA) doing that at the same moment in one PostgreSQL database
collide on unique keys. Recording submissions touches only each student's
own rows, so only this set-up is serialised, with a PostgreSQL advisory lock
(held by one connection, released when it closes, even if the grader dies).
A SQLite gradebook lives in one course directory, with one grader at a time.
"""
import zlib
from contextlib import contextmanager

_LOCK_KEY = zlib.crc32(b"autograder gradebook set-up")


def shared_gradebook(db_url):
    """Whether the gradebook at ``db_url`` is a server's, which several graders and machines can write
    into (PostgreSQL), rather than a file on this one (SQLite)."""
    return db_url.startswith(("postgresql", "postgres"))


@contextmanager
def setup_lock(db_url):
    """Hold the gradebook's set-up lock (PostgreSQL only) for the duration of the block."""
    if not shared_gradebook(db_url):
        yield
        return
    from sqlalchemy import create_engine, text
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    finally:
        engine.dispose()


# nbgrader's tables are indexed on their unique keys only, whose first columns are not those its
# relationships load by: a student's grades and comments (by notebook), their notebooks (by
# assignment) and their submissions (by student). Without these, each of those loads reads the
# whole table, and a gradebook of 10,000 students (200,000 grades) costs its server far more per
# submission than one of ten. Extra indexes change no row and no read: nbgrader's export,
# formgrader and its migrations see the same tables.
INDEXES = {"autograder_ix_grade_notebook": ("grade", "notebook_id"),
           "autograder_ix_comment_notebook": ("comment", "notebook_id"),
           "autograder_ix_submitted_notebook_assignment": ("submitted_notebook", "assignment_id"),
           "autograder_ix_submitted_assignment_student": ("submitted_assignment", "student_id")}


def ensure_indexes(db_url):
    """Create :data:`INDEXES` where missing (SQLite or PostgreSQL), in the gradebook at ``db_url``."""
    from sqlalchemy import create_engine, text
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            for name, (table, column) in INDEXES.items():
                connection.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})"))
    finally:
        engine.dispose()


def use_write_ahead_log(db_url):
    """Put a SQLite gradebook in write-ahead-log mode (it stays so: the mode is kept in the file).

    In SQLite's default rollback-journal mode every commit syncs the journal and the database to
    disk, and a reader blocks a writer's commit. nbgrader commits once per graded cell, so a
    recorder spends most of its gradebook time waiting on disk (about 0.8 ms a commit here) while
    holding the lock every other recorder waits for. In WAL mode readers and the writer do not block
    each other, and with ``synchronous=NORMAL`` (set per connection by the recorders) a commit is
    appended to the log without waiting for the disk: a crash of the program loses nothing, a power
    cut may lose the last commits but never corrupts the file (SQLite's documentation). nbgrader,
    formgrader and ``nbgrader export`` read it as before; the ``-wal`` and ``-shm`` files beside it
    are folded back when the last connection closes. PostgreSQL: nothing to do.

    Whether the gradebook is in WAL mode now: switching needs a moment when no other program (a
    formgrader, say) is reading it; if one is, the batch goes on in the journal mode it finds."""
    if not db_url.startswith("sqlite"):
        return False
    from sqlalchemy import create_engine, exc, text
    engine = create_engine(db_url, connect_args={"timeout": 2})
    try:
        with engine.connect() as connection:
            return connection.execute(text("PRAGMA journal_mode=WAL")).scalar().lower() == "wal"
    except exc.OperationalError:
        return False
    finally:
        engine.dispose()
