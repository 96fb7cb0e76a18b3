"""Where a batch's time goes: each stage of ``python -m autograder grade`` timed while it really runs.

The benches wrap the functions the batch grader calls for each stage (its
own code, unchanged) and add up their seconds:

* intake: collecting the files, and waiting for them to be restored on the
  release's skeleton (restoring starts before the sandboxed runs and goes on
  beside them, in limited child processes);
* sandboxed run: each submission's run in a warm worker (worker time; the
  workers run side by side);
* judging: judging each submission's observations (the wall time the
  grader waits for it: here, or in its judging processes);
* handing over: saving the verdict and the notebook where nbgrader expects them;
* recording and feedback: nbgrader's autograde and generate_feedback in the
  recorder processes (recorder time; recorders run side by side).

``wall`` is the whole command; the timeline (``phases``) says how much of it
came before the first sandboxed run, between the first and last runs, after
the last run (the recording still under way), and after the last recording
(the reports).
"""
import time
from contextlib import contextmanager

from autograder.grade import batch, recording, trusted
from autograder.grade.sandbox.pool import Pool


class Stages:
    def __init__(self):
        self.seconds = dict(intake=0.0, run=0.0, judging=0.0, handing_over=0.0, recording=0.0, feedback=0.0)
        self.marks, self.cpu = {}, {}
        self.recorders = 0

    def _timed(self, stage, function, first=None, last=None):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            if first and first not in self.marks:
                self.marks[first], self.cpu[first] = start, time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                end = time.perf_counter()
                self.seconds[stage] += end - start
                if last:
                    self.marks[last] = end
        return timed

    def _waited(self, stage, function):
        """``function`` returns an iterator: the time spent waiting for each of its items counts."""
        timed_call = self._timed(stage, function)

        def waited(*args, **kwargs):
            items = timed_call(*args, **kwargs)  # started now, as without the bench
            take = self._timed(stage, lambda: next(items, StopIteration))

            def each():
                while (item := take()) is not StopIteration:
                    yield item
            return each()
        return waited

    @contextmanager
    def watching(self):
        """Time the stages of every batch graded in this block (in this process), on the local pool or
        on a Dask cluster (whose runs and recording happen elsewhere: only their marks are kept)."""
        from autograder.grade.cluster import DaskPool
        from autograder.grade.cluster_recording import DaskRecorders
        from autograder.grade.judging import Judges

        functions = [(batch, "collect", "intake"), (batch, "restoring", "intake"),
                     (trusted, "verdicts", "judging"), (Judges, "verdicts", "judging"),
                     (batch, "_submit", "handing_over"), (Pool, "run", "run"),
                     (DaskPool, "run", None)]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in functions]
        saved += [(kind, name, getattr(kind, name)) for kind in (recording.Recorders, DaskRecorders)
                  for name in ("close", "wait")]
        stages = self

        def closing(close):
            def closed(recorders):
                close(recorders)
                stages.seconds["recording"] += sum(t[1] for t in recorders.timings)
                stages.seconds["feedback"] += sum(t[2] for t in recorders.timings)
                stages.recorders = max(stages.recorders, recorders.count)
            return closed

        def waiting(wait):
            def waited(recorders):
                wait(recorders)
                stages.marks["recorded"], stages.cpu["recorded"] = time.perf_counter(), time.process_time()
            return waited

        for owner, name, stage in functions:
            function = getattr(owner, name)
            setattr(owner, name, self._timed("run", function, first="first run", last="last run") if name == "run"
                    else self._waited(stage, function) if name == "restoring" else self._timed(stage, function))
        for kind in (recording.Recorders, DaskRecorders):
            kind.close, kind.wait = closing(kind.close), waiting(kind.wait)
        try:
            self.marks["start"] = time.perf_counter()
            yield self
            self.marks["end"] = time.perf_counter()
        finally:
            for owner, name, function in saved:
                setattr(owner, name, function)

    def grader_cpu(self, count):
        """Seconds of this process's CPU per submission from the first sandboxed run to the last
        recording: the grader's own work per submission (handing out jobs, judging, handing over,
        receiving what was recorded, and its share of intake: reading what the restoring children
        wrote), with start-up before it and the reports after."""
        return (self.cpu["recorded"] - self.cpu["first run"]) / count

    def per_submission(self, count):
        """{stage: seconds per submission}, ``wall`` included."""
        return dict({stage: s / count for stage, s in self.seconds.items()},
                    wall=(self.marks["end"] - self.marks["start"]) / count)

    def phases(self):
        """[(phase, seconds)] of the wall time, in order."""
        m = self.marks
        return [("before the first sandboxed run (intake, workers starting)", m["first run"] - m["start"]),
                ("first to last sandboxed run", m["last run"] - m["first run"]),
                ("recording after the last run", m["recorded"] - m["last run"]),
                ("reports", m["end"] - m["recorded"])]

    def report(self, count):
        """Lines for the benches' output."""
        per = self.per_submission(count)
        phases = dict(self.phases())
        rest = (sum(phases.values()) - self.seconds["intake"]
                - phases["first to last sandboxed run"] - phases["recording after the last run"]) / count
        lines = [f"  per submission: {per['wall']:.3f} s wall; sandboxed run {per['run']:.3f} s (worker), "
                 f"intake {per['intake']:.3f} s, judging {per['judging']:.3f} s, handing over "
                 f"{per['handing_over']:.3f} s, recording {per['recording']:.3f} s and feedback "
                 f"{per['feedback']:.3f} s (in {self.recorders} recorder(s)), the rest (start-up, reports) "
                 f"{rest:.3f} s",
                 "  timeline: " + "; ".join(f"{name} {s:.1f} s" for name, s in self.phases())]
        return lines
