"""Recording verdicts with nbgrader, one submission at a time, in several processes.

nbgrader's autograde (ApplyVerdicts + SaveAutoGrades + AssignLatePenalties)
and generate_feedback cost about as much per notebook as the sandboxed run
itself, so one recorder process doing rounds over the whole batch is the
ceiling on a cluster. Here each judged submission is handed to a recorder as
soon as its verdict is saved (``record.py``, one student per request), and
recorders are added, up to ``most``, while every one has work: the
first starts with the batch, so nbgrader's imports overlap the sandbox's
warm-up, and a batch of one file never pays for a second. Every recorder runs
on the instructor's machine, in this process's control; they share the
gradebook (a SQLite one takes their writes in turn, see ``record.py``).
"""
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from .gradebook import shared_gradebook


class Recorders:
    """Up to ``most`` recorder processes fed from one queue of student ids.

    ``timings``: (student, seconds of nbgrader autograde, seconds of generate_feedback) per recorded
    submission; ``failed``: the students nbgrader refused (or whose recorder died)."""

    def __init__(self, course_dir, assignment, verdict_dir, db_url, most=None):
        lock = "" if shared_gradebook(db_url) else Path(course_dir) / "grading" / "gradebook.lock"
        if lock:
            lock.parent.mkdir(parents=True, exist_ok=True)
        self._command = [sys.executable, "-m", "autograder.grade.record", str(course_dir), assignment,
                         str(verdict_dir), db_url, str(lock)]
        self._course_dir = course_dir
        self._most = max(1, most or os.cpu_count() or 1)
        self._queue = queue.Queue()
        self._guard = threading.Lock()
        self._pending = 0  # handed over and not recorded yet
        self._workers = []
        self.timings, self.failed = [], []
        self._add()

    def _spawn(self):
        env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
        return subprocess.Popen(self._command, cwd=self._course_dir, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def _add(self):
        slot = [self._spawn()]  # the recorder process serving this thread (replaced if it dies)
        thread = threading.Thread(target=self._serve, args=(slot,), daemon=True)
        self._workers.append((slot, thread))
        thread.start()

    def record(self, student, done=None):
        """Record ``student``'s verdict and write their feedback, in the next free recorder;
        then ``done(ok, seconds of autograde, seconds of feedback)`` if given (in a recorder's thread)."""
        with self._guard:
            if self._pending >= len(self._workers) and len(self._workers) < self._most:  # all have work: one more
                self._add()
            self._pending += 1
            self._queue.put((student, done))

    def _serve(self, slot):
        while True:
            request = self._queue.get()
            if request is None:
                self._queue.task_done()
                return
            student, done = request
            if slot[0] is None:  # the last one died: a new recorder, now that there is work for it
                slot[0] = self._spawn()
            try:
                slot[0].stdin.write(student + "\n")
                slot[0].stdin.flush()
                answer = slot[0].stdout.readline().split()
            except OSError:
                answer = []
            if not answer:  # the recorder died on this student: it fails, the next one gets a new recorder
                slot[0].wait()
                slot[0] = None
            ok = len(answer) == 4 and answer[0] == "ok"
            seconds = (float(answer[2]), float(answer[3])) if ok else (0.0, 0.0)
            with self._guard:
                if ok:
                    self.timings.append((student, *seconds))
                else:
                    self.failed.append(student)
                self._pending -= 1
            if done is not None:
                done(ok, *seconds)
            self._queue.task_done()

    @property
    def count(self):
        """How many recorder processes were started."""
        return len(self._workers)

    def wait(self):
        """Until every submission handed over so far is recorded."""
        self._queue.join()

    def close(self):
        """Record what is queued, then stop every recorder."""
        for _ in self._workers:
            self._queue.put(None)
        for slot, thread in self._workers:
            thread.join()
            if slot[0] is not None:
                slot[0].stdin.close()
                slot[0].wait()
