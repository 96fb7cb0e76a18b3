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
