"""Judging beside the grader's process: ``python -m autograder.grade.judging ASSIGNMENT``.

Judging a submission computes the hidden NumPy references for its freshly
drawn challenges (for ResNet-18, a whole forward pass): tens of milliseconds
per submission, which in the grader's one process would be most of its
serial share on a cluster. :class:`Judges` keeps a few judging processes
that import the judges once and then answer one request at a time: the
submission's restored notebook, its job (with the challenges) and the
outcome of its run, pickled on stdin, for ``trusted.verdicts``' answer,
pickled on stdout (each message a 4-byte length and its bytes).

They are the instructor's processes on the instructor's machine, like the
grader: the challenges and the references never leave it, and of the
students' runs only their observations reach them. They are started as
plain commands, not by ``multiprocessing``, whose fresh processes import the
caller's main script again (an instructor's script that calls ``grade()``
at its top level would start grading again in each). A judging process that
fails or dies is replaced, and that submission is judged in the grader's
process instead: the verdict is the same either way.
"""
import pickle
import queue
import struct
import subprocess
import sys

from . import trusted

_LENGTH = struct.Struct(">I")


def _send(stream, message):
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the judging process ended")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the judging process ended mid-answer")
    return pickle.loads(data)


class Judges:
    """``verdicts(nb, assignment, job, outcome)``, as ``trusted.verdicts`` gives it, in ``processes``
    judging processes (started now: they import the judges while the sandbox warms up)."""

    def __init__(self, assignment, processes=2):
        self._command = [sys.executable, "-m", "autograder.grade.judging", assignment]
        self._idle = queue.Queue()
        self._started = [self._spawn() for _ in range(processes)]
        for process in self._started:
            self._idle.put(process)

    def _spawn(self):
        return subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)

    def verdicts(self, nb, assignment, job, outcome):
        process = self._idle.get()
        try:
            _send(process.stdin, (nb, assignment, job, outcome))
            ok, answer = _receive(process.stdout)
        except (OSError, EOFError):
            ok, answer = False, None
        if ok:
            self._idle.put(process)
            return answer
        process.kill()  # it failed this submission: a new one for the next, this one judged here
        process.wait()
        replacement = self._spawn()
        self._started.append(replacement)
        self._idle.put(replacement)
        return trusted.verdicts(nb, assignment, job, outcome)

    def close(self):
        for process in self._started:
            if process.poll() is None:
                process.stdin.close()  # end of requests: it exits
        for process in self._started:
            process.wait()


def main(assignment):
    trusted.all_parts(assignment)  # the judges imported before the first request
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            nb, assignment_, job, outcome = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, trusted.verdicts(nb, assignment_, job, outcome))
        except Exception as error:  # noqa: BLE001 (the grader judges this one itself, and sees the error)
            answer = (False, repr(error))
        _send(answers, answer)


if __name__ == "__main__":
    main(sys.argv[1])
