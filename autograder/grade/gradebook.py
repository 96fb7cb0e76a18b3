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


@contextmanager
def setup_lock(db_url):
    """Hold the gradebook's set-up lock (PostgreSQL only) for the duration of the block."""
    if not db_url.startswith(("postgresql", "postgres")):
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
