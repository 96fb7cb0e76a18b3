"""Running the sandboxed submissions on a Dask cluster (``python -m autograder grade --scheduler ADDRESS``).

The sandboxed run moves, and with a PostgreSQL gradebook the recording too
(``cluster_recording.py``). The instructor's process keeps what must stay
secret or be judged — intake, the secret challenges, judging — and sends
each Dask worker exactly what a local worker gets: a job (the notebook's
cells and the challenges), for an :class:`Outcome` (the observations and how
the run ended) in return.

On each Dask worker a :class:`SandboxPlugin` holds a local
:class:`~autograder.grade.sandbox.pool.Pool` with one warm sandboxed
process per worker thread, started when the plugin is registered (and on
every worker that joins later), so a submission costs a worker what it
costs locally. A worker refuses to set up when bubblewrap is missing (unless
the batch runs with ``--no-sandbox``) or when its package or stack differs
from the grader's, since the observations must come from the same code.

A sandboxed process that breaks the grading protocol is stopped and replaced
by the Dask worker's pool, as locally (``pool.Worker.run``), and only that
submission's outcome says so.

Faults are Dask's: the tasks of a worker that dies are run again elsewhere;
a submission whose run has killed more workers than the scheduler's
``distributed.scheduler.allowed-failures`` (default 3) is stopped, and its
row says so. A submission that kills only its sandboxed process (not the
Dask worker) gets the same outcome as locally: it keeps what it recorded.
"""
import asyncio
import hashlib
import json
import sys
import threading
from dataclasses import asdict
from importlib import metadata

from distributed import Client, WorkerPlugin, get_worker
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from .sandbox.pool import PACKAGE_DIR, Limits, Outcome, Pool, bwrap_available

# What a worker runs: its files and its stack must be the grader's.
# With a PostgreSQL gradebook the workers also record (``cluster_recording.py``): nbgrader's converters with
# this course's preprocessors and feedback templates.
_WORKER_CODE = ["student", "sandboxed", "grade/sandbox", "course.py", "__init__.py", "grade/record.py",
                "grade/recording.py", "grade/cluster_recording.py", "grade/autograde.py", "grade/verdicts.py",
                "grade/feedback.py", "grade/metadata.py", "grade/templates"]
_STACK = ["mxnet", "numpy", "d2l", "ipython", "nbgrader", "nbconvert"]


class WorkerRefused(RuntimeError):
    """A Dask worker cannot run submissions as this grader asked."""


def fingerprint():
    """{"package": digest of the code a worker runs, "python": "3.11", <package>: version, ...}."""
    digest = hashlib.sha256()
    for entry in _WORKER_CODE:
        path = PACKAGE_DIR / entry
        for file in sorted(f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                           and (f.suffix == ".py" or entry.endswith("templates"))) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(PACKAGE_DIR)).encode() + b"\0" + file.read_bytes())
    found = {"package": digest.hexdigest()[:16], "python": "%d.%d" % sys.version_info[:2]}
    for name in _STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


class SandboxPlugin(WorkerPlugin):
    """A pool of warm sandboxed processes on a Dask worker, one per worker thread."""

    idempotent = True  # a second grader on the same cluster reuses the workers' warm pools

    def __init__(self, sandbox, expected, limits=None):
        self.sandbox = sandbox
        self.expected = expected
        self.limits = limits or Limits()  # the per-worker caps (processes, disk) are set when a worker starts
        self.name = "autograder-sandbox-" + hashlib.sha256(
            json.dumps([sandbox, expected, asdict(self.limits)], sort_keys=True).encode()).hexdigest()[:12]
        self.pool = None
        self.error = None

    async def setup(self, worker):
        found = fingerprint()
        differs = sorted(k for k in set(found) | set(self.expected) if found.get(k) != self.expected.get(k))
        if differs:
            self.error = (f"Dask worker {worker.address} differs from the grader in "
                          + ", ".join(f"{k} ({found.get(k)} here, {self.expected.get(k)} there)" for k in differs)
                          + ": install the same requirements.txt and this package on every worker")
        elif self.sandbox and not bwrap_available():
            self.error = (f"Dask worker {worker.address} has no working bubblewrap (bwrap): install it there "
                          "(apt-get install bubblewrap), or grade with --no-sandbox (no isolation)")
        if self.error:
            raise WorkerRefused(self.error)
        pool = Pool(worker.state.nthreads, sandbox=self.sandbox, limits=self.limits)
        await asyncio.to_thread(pool.start)  # the worker's event loop stays responsive during the warm-up
        self.pool = pool

    def teardown(self, worker):
        if self.pool is not None:
            self.pool.close()


def _run_on_worker(plugin_name, job):
    """The Dask task: one submission through the worker's warm sandboxed pool."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None or plugin.pool is None:
        raise WorkerRefused(getattr(plugin, "error", None)
                            or f"Dask worker {worker.address} has not set up the grading sandbox (see its log)")
    return plugin.pool.run(job)


def _setup_error(plugin_name, dask_worker):
    """Why this worker's sandbox could not be set up, or None (``client.run`` calls this on every worker)."""
    return getattr(dask_worker.plugins.get(plugin_name), "error", None)


class DaskPool:
    """The local pool's interface (``start``, ``run``, ``close``) on the workers of a Dask cluster.

    ``start`` runs in a thread while the intake works: it keeps what went wrong,
    and ``started`` (called before the first ``run``) raises it with a clear message.
    """

    def __init__(self, address, sandbox=True, limits=None, timeout=60):
        self.address, self.sandbox, self.timeout = address, sandbox, timeout
        self.client = None
        self.plugin = SandboxPlugin(sandbox, fingerprint(), limits)
        self.error = None
        self.ready = threading.Event()  # set once ``start`` has finished, whether or not the cluster is usable

    def start(self):
        try:
            self._start()
        finally:
            self.ready.set()

    def _start(self):
        try:
            self.client = Client(self.address, timeout=min(self.timeout, 30))
        except (OSError, TimeoutError) as error:
            self.error = f"cannot reach the Dask scheduler at {self.address}: {error}"
            return
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
            self.client.register_plugin(self.plugin, name=self.plugin.name)
            # Registered earlier (by another batch), the plugin was set up on workers that joined since:
            # one that refused then refuses this batch now, before any submission is sent to it.
            self.error = "; ".join(e for e in self.client.run(_setup_error, self.plugin.name).values() if e) or None
        except TimeoutError:
            self.error = f"no Dask worker joined the scheduler at {self.address} within {self.timeout} s"
        except WorkerRefused as error:
            self.error = str(error)
        if not self.sandbox:
            print(f"WARNING: --no-sandbox: the Dask workers of {self.address} run the students' code without "
                  "bubblewrap, with the workers' own rights (files, network, the worker itself). "
                  "Use it only for trusted notebooks.", file=sys.stderr)

    def started(self):
        """The cluster's number of worker threads, once started; SystemExit with the reason if it cannot be used."""
        if self.error:
            raise SystemExit(self.error)
        return max(1, sum(self.client.nthreads().values()))

    def run(self, job):
        if self.error:
            raise SystemExit(self.error)
        future = self.client.submit(_run_on_worker, self.plugin.name, job, pure=False)
        try:
            return future.result()
        except KilledWorker as error:
            tries = getattr(error, "allowed_failures", None)
            return Outcome(reason="the notebook was stopped: every Dask worker that ran it died"
                                  + (f" ({tries + 1} tries)" if tries is not None else ""))
        except WorkerRefused as error:
            self.error = str(error)  # the batch stops: grading on a misconfigured worker would be wrong
            raise SystemExit(self.error)
        except FutureCancelledError:
            raise SystemExit(f"the Dask scheduler at {self.address} cancelled the grading (did it stop?)")

    def close(self):
        if self.client is not None:
            self.client.close()

    def __enter__(self):
        self.start()
        self.started()
        return self

    def __exit__(self, *exc):
        self.close()
