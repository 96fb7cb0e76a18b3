"""Recording on the Dask cluster's workers, into a shared PostgreSQL gradebook.

nbgrader's autograde and generate_feedback cost a submission about as much
as its sandboxed run: recorders that all run on the instructor's machine
limit a cluster from a few workers on. With a PostgreSQL gradebook (which
every worker can reach, and in which nbgrader records each student's rows on
their own) recording moves to the workers, so it grows with the cluster:

* the instructor's process judges the verdict, as before, and hands the
  worker exactly what a local recorder reads: the restored notebook and its
  verdict (never the student's original file, never the challenges);
* on each worker a :class:`RecorderPlugin` keeps a scratch course directory
  (the course's ``nbgrader_config.py`` and the assignment's ``source/``
  files, sent by the grader) and warm recorder processes, the same
  ``record.py`` as locally (:class:`~autograder.grade.recording.Recorders`),
  up to one per worker thread. They write the student's rows into the shared
  gradebook with nbgrader's own Autograde, render the feedback page with its
  GenerateFeedback, and send back the autograded notebook and the page;
* the instructor's process writes those files into the course directory
  (``autograded/`` and ``feedback/``, each folder in one rename), where
  nbgrader's formgrader, ``nbgrader export`` and the reports find them.

The workers run the grader's own code (the sandbox plugin refuses a worker
whose package or stack differs) and must reach the gradebook with their own
credentials (``~/.pgpass`` on each worker machine). The students' code never
sees them: it runs in the sandbox, which gets neither the gradebook's address
nor the recorders' folders. A SQLite gradebook is a file on the instructor's
machine: with one, recording stays there (``recording.py``).
"""
import hashlib
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from distributed import WorkerPlugin, get_worker

from .record import STUDENT_ID
from .recording import Recorders

OUTPUTS = ("autograded", "feedback")  # what a recorder writes per student, and sends back


def _course_files(course_dir, assignment):
    """{relative path: bytes}: what a recorder needs of the course directory."""
    course_dir = Path(course_dir)
    files = {"nbgrader_config.py": (course_dir / "nbgrader_config.py").read_bytes()}
    source = course_dir / "source" / assignment
    for path in sorted(source.rglob("*")):
        if path.is_file():
            files[path.relative_to(course_dir).as_posix()] = path.read_bytes()
    return files


class RecorderPlugin(WorkerPlugin):
    """Warm recorders on a Dask worker, in a scratch course directory, up to one per worker thread."""

    idempotent = True  # a second batch of the same assignment into the same gradebook reuses them

    def __init__(self, assignment, db_url, files):
        self.assignment, self.db_url, self.files = assignment, db_url, files
        digest = hashlib.sha256(f"{assignment}\0{db_url}".encode())
        for name, data in sorted(files.items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        self.name = "autograder-recorders-" + digest.hexdigest()[:12]
        self.root = self.recorders = None

    def setup(self, worker):
        # In the worker's own folder, which Dask removes when the worker ends (or, killed, when the
        # next worker on that machine starts).
        self.root = Path(tempfile.mkdtemp(prefix="autograder-recording-", dir=worker.local_directory))
        for name, data in self.files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (self.root / "verdicts").mkdir()
        self.recorders = Recorders(self.root, self.assignment, self.root / "verdicts", self.db_url,
                                   most=worker.state.nthreads)

    def teardown(self, worker):
        if self.recorders is not None:
            self.recorders.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _clear(self, student):
        for folder in ("submitted", *OUTPUTS):
            shutil.rmtree(self.root / folder / student, ignore_errors=True)
        (self.root / "verdicts" / f"{student}.json").unlink(missing_ok=True)

    def record(self, student, notebook, verdict):
        """{"ok", "seconds": (autograde, feedback), "files": {relative path: bytes}} for one student."""
        if not STUDENT_ID.match(student):
            raise ValueError(f"not a student id: {student!r}")
        self._clear(student)
        (self.root / "verdicts" / f"{student}.json").write_bytes(verdict)
        folder = self.root / "submitted" / student / self.assignment
        folder.mkdir(parents=True)
        (folder / f"{self.assignment}.ipynb").write_bytes(notebook)
        finished, answer = threading.Event(), []
        self.recorders.record(student, done=lambda *said: (answer.extend(said), finished.set()))
        finished.wait()
        files = {}
        for output in OUTPUTS:
            base = self.root / output / student / self.assignment
            for path in sorted(base.rglob("*")) if base.exists() else ():
                if path.is_file():
                    files[path.relative_to(self.root).as_posix()] = path.read_bytes()
        self._clear(student)
        return {"ok": answer[0], "seconds": tuple(answer[1:]), "files": files}


def _record_on_worker(plugin_name, student, notebook, verdict):
    """The Dask task: one student's verdict recorded by the worker's warm recorders."""
    plugin = get_worker().plugins.get(plugin_name)
    if plugin is None or plugin.recorders is None:
        raise RuntimeError(f"Dask worker {get_worker().address} has not set up its recorders (see its log)")
    return plugin.record(student, notebook, verdict)


def recorded_here(db_url, dask_worker):
    """How many submissions this worker's recorders have recorded into ``db_url``, with their seconds of
    autograde and of feedback (``client.run(recorded_here, url)`` asks every worker)."""
    timings = [t for plugin in dask_worker.plugins.values() if isinstance(plugin, RecorderPlugin)
               and plugin.db_url == db_url and plugin.recorders is not None for t in plugin.recorders.timings]
    return {"count": len(timings), "autograde": sum(t[1] for t in timings), "feedback": sum(t[2] for t in timings)}


class DaskRecorders:
    """:class:`~autograder.grade.recording.Recorders`' interface (``record``, ``wait``, ``close``,
    ``failed``, ``timings``, ``count``) with the recorders on the workers of ``pool`` (a started
    :class:`~autograder.grade.cluster.DaskPool`).

    The plugin is registered as soon as the pool has its client, so the workers' recorders warm up
    while the sandboxes do; ``record`` reads the notebook and verdict that ``batch._submit`` has
    just written, sends them, and one thread here writes back what each worker returns."""

    PRIORITY = 1  # a judged submission is recorded before the next one starts running

    def __init__(self, pool, course_dir, assignment, verdict_dir, db_url):
        self._pool, self._course_dir, self._assignment = pool, Path(course_dir), assignment
        self._verdict_dir = Path(verdict_dir)
        self.plugin = RecorderPlugin(assignment, db_url, _course_files(course_dir, assignment))
        self.timings, self.failed = [], []
        self.error = None
        self._writer = ThreadPoolExecutor(1)
        self._guard = threading.Condition()
        self._pending = 0
        self._registering = threading.Thread(target=self._register, daemon=True)
        self._registering.start()

    def _register(self):
        self._pool.ready.wait()
        if self._pool.error is None:
            try:
                self._pool.client.register_plugin(self.plugin, name=self.plugin.name)
            except Exception as error:  # noqa: BLE001 (said when the first submission is recorded)
                self.error = f"the Dask workers could not start nbgrader's recorders: {error}"

    @property
    def count(self):
        """Recorder processes are the workers' (up to one per worker thread), not counted here."""
        return 0

    def record(self, student):
        self._registering.join()
        if self.error:
            raise SystemExit(self.error)
        notebook = (self._course_dir / "submitted" / student / self._assignment
                    / f"{self._assignment}.ipynb").read_bytes()
        verdict = (self._verdict_dir / f"{student}.json").read_bytes()
        with self._guard:
            self._pending += 1
        future = self._pool.client.submit(_record_on_worker, self.plugin.name, student, notebook, verdict,
                                          pure=False, priority=self.PRIORITY)
        future.add_done_callback(lambda done: self._writer.submit(self._store, student, done))

    def _store(self, student, future):
        try:
            answer = future.result()
            if answer["ok"]:
                self._write(student, answer["files"])
                self.timings.append((student, *answer["seconds"]))
            else:
                self.failed.append(student)
        except Exception:  # noqa: BLE001 (a worker lost, nbgrader's error: this student is not recorded)
            self.failed.append(student)
        finally:
            with self._guard:
                self._pending -= 1
                self._guard.notify_all()

    def _write(self, student, files):
        """The worker's files, each output folder replaced in one rename."""
        staging = self._course_dir / "grading" / self._assignment / "staging-recorded" / student
        shutil.rmtree(staging, ignore_errors=True)
        for name, data in files.items():
            parts = PurePosixPath(name).parts
            if (len(parts) < 4 or parts[0] not in OUTPUTS or parts[1] != student or parts[2] != self._assignment
                    or any(p in ("", ".", "..") for p in parts)):
                raise ValueError(f"a recorder sent back an unexpected path: {name!r}")
            path = staging.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for output in OUTPUTS:
            target = self._course_dir / output / student / self._assignment
            shutil.rmtree(target, ignore_errors=True)
            made = staging / output / student / self._assignment
            if made.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(made, target)
        shutil.rmtree(staging, ignore_errors=True)

    def wait(self):
        """Until every submission handed over so far is recorded and its files written."""
        with self._guard:
            self._guard.wait_for(lambda: self._pending == 0)

    def close(self):
        """The workers keep their recorders warm for the next batch; only this side's writer stops."""
        self._writer.shutdown(wait=True)
