"""Recording verdicts with nbgrader, one submission at a time, in several processes.

nbgrader's autograde (ApplyVerdicts + SaveAutoGrades + AssignLatePenalties)
and generate_feedback cost about as much per notebook as the sandboxed run
itself, so one recorder process doing rounds over the whole batch is the
ceiling on a cluster. Here each judged submission is handed to a recorder as
soon as its verdict is saved (``record.py``, one student per request), and
recorders are added, up to ``most``, while every one has work. They are forked
from one warm process (``record.py``'s zygote), which starts with the batch, so
nbgrader's imports and the converters' warm-up overlap the sandbox's, once
however many recorders follow. Every recorder runs
on the instructor's machine, in this process's control; they share the
gradebook (a SQLite one takes their writes in turn, see ``record.py``).
"""
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from .gradebook import shared_gradebook


class _Recorder:
    """One recorder forked by the zygote: its end of their socket pair, and its pid."""

    def __init__(self, channel, pid):
        self.channel, self.pid = channel, pid
        self.stdin, self.stdout = channel.makefile("w"), channel.makefile("r")

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self):
        """No more students: the recorder ends once it has answered; until then."""
        try:
            self.stdin.close()
            self.channel.shutdown(socket.SHUT_WR)
            while self.stdout.read(1 << 16):
                pass
        except OSError:
            pass
        self.stdout.close()
        self.channel.close()


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
        self._forking = threading.Lock()  # one request at a time on the zygote's socket
        self._pending = 0  # handed over and not recorded yet
        self._workers = []
        self.timings, self.failed = [], []
        self._zygote = self._control = None
        self._start_zygote()
        self._add()

    def _start_zygote(self):
        env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
        ours, theirs = socket.socketpair()
        with theirs:
            self._zygote = subprocess.Popen(self._command, cwd=self._course_dir, env=env, stdin=theirs,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._control, self._answers = ours, ours.makefile("r")

    def _fork(self):
        """A new recorder, forked by the zygote once it is warm (a new zygote if the last one ended)."""
        with self._forking:
            for attempt in (1, 2):
                ours, theirs = socket.socketpair()
                try:
                    with theirs:
                        socket.send_fds(self._control, [b"recorder"], [theirs.fileno()])
                    pid = int(self._answers.readline())
                    return _Recorder(ours, pid)
                except (OSError, ValueError):
                    ours.close()
                    if attempt == 2:
                        raise
                    self._stop_zygote()
                    self._start_zygote()

    def _replace(self, slot):
        try:
            slot[0] = self._fork()
        except (OSError, ValueError):  # not even a new zygote forks one: this student fails, the next tries
            slot[0] = None

    def _stop_zygote(self):
        """It holds no student's work (it never records): stopped at once, even while it warms up."""
        self._answers.close()
        self._control.close()
        self._zygote.kill()
        self._zygote.wait()

    def _add(self):
        slot = [None]  # the recorder serving this thread: forked by the thread, replaced if it dies
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
        self._replace(slot)  # at once: it is warm when the first student comes
        while True:
            request = self._queue.get()
            if request is None:
                self._queue.task_done()
                return
            student, done = request
            if slot[0] is None:  # the last one died: a new recorder, now that there is work for it
                self._replace(slot)
            try:
                slot[0].stdin.write(student + "\n")
                slot[0].stdin.flush()
                answer = slot[0].stdout.readline().split()
            except (OSError, AttributeError):  # (no recorder could be forked: slot[0] is None)
                answer = []
            if not answer and slot[0] is not None:  # it died on this student, who fails; a new one next
                slot[0].finish()
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
                slot[0].finish()
        self._stop_zygote()
