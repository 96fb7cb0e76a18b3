"""A private PostgreSQL server on loopback, for the tests and the benches that measure the shared gradebook.

It runs from Debian's ``postgresql`` package (``scripts/env.sh`` installs it
when it is missing and it can) in a temporary data directory, as the
``postgres`` user when run as root (PostgreSQL refuses root), and is stopped
and deleted afterwards.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _server_binaries():
    """The newest PostgreSQL server's bin folder (Debian keeps it off PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


BIN = _server_binaries()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running():
    """Start a server; yields a function that creates a fresh database and returns its URL."""
    folder = Path(tempfile.mkdtemp(prefix="resnet-postgres-"))
    as_user = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", account.pw_name, "--"]
    data, port = folder / "data", _free_port()

    def run(*args):
        subprocess.run([*as_user, *map(str, args)], check=True, capture_output=True, cwd=folder)

    run(BIN / "initdb", "-D", data, "-U", "grader", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
    run(BIN / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {folder} -F")
    import psycopg

    def database(name):
        with psycopg.connect(host="127.0.0.1", port=port, user="grader", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return f"postgresql://grader@127.0.0.1:{port}/{name}"

    def cpu_seconds():
        """The server's CPU so far: its main process, the processes it has reaped (connections that
        ended) and those still running (connections still open, pooled by a recorder, say)."""
        server = int((data / "postmaster.pid").read_text().split()[0])
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
            except OSError:  # ended meanwhile: its CPU is in the server's reaped share now or soon
                continue
            if stat.parent.name == str(server):
                total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            elif fields[1] == str(server):
                total += sum(int(f) for f in fields[11:13])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    database.cpu_seconds = cpu_seconds
    try:
        yield database
    finally:
        run(BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
