"""Batch grading an instructor can trust: ``python -m autograder grade ASSIGNMENT INPUT...``.

1. **Intake** (``intake/``): folders of Colab downloads, LMS zips or
   nbgrader's ``submitted/`` tree become one entry per file; broken files get
   a reason, notebooks are rebuilt on the release's skeleton.
2. **Run** (``sandbox/``): each usable notebook runs in a sandboxed, warm
   worker, in parallel on all cores, with graded cells replaced by probes
   that only observe; with ``--scheduler``, on the workers of a Dask
   cluster instead (``cluster.py``), everything else staying here.
3. **Judge** (``trusted.py``): this process judges the observations against
   challenges drawn secretly for each submission.
4. **Record** with nbgrader's own API: the verdicts go through nbgrader's
   autograde (ApplyVerdicts + SaveAutoGrades) into the gradebook, then its
   generate_feedback writes the HTML feedback.
5. **Report**: ``grading/<assignment>/grades.csv`` (one row per input file),
   ``summary.png`` (score histogram), ``pass_rates.csv`` (per part).

Re-running skips submissions whose notebook is unchanged since they were
graded, unless ``--force``.
"""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .. import course
from . import trusted
from ..assign.demo import max_scores, parts_of
from .intake import intake
from .gradebook import setup_lock
from .nbgrader_cli import nbgrader
from .sandbox.pool import Limits, Pool, bwrap_available

GRADER_VERSION = "1"


def _key(nb, assignment):
    """What a cached verdict depends on: the notebook as graded, the assignment's source and this grader."""
    digest = hashlib.sha256()
    for part in (GRADER_VERSION, assignment, course.source_notebook(assignment).read_bytes(),
                 nbformat.writes(nb).encode()):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()


def _ensure_assignment(course_dir, assignment, db_url):
    """The gradebook knows the assignment (nbgrader generate_assignment records its graded cells)."""
    with setup_lock(db_url):  # another grader may be setting up the same gradebook
        with Gradebook(db_url) as gb:
            try:
                gb.find_assignment(assignment)
                return
            except MissingEntry:
                pass
        nbgrader(course_dir, "generate_assignment", assignment, "--force", f"--CourseDirectory.db_url={db_url}")


class _Recorder:
    """nbgrader in a separate process (autograder.grade.record), started first so that its imports
    overlap the sandbox's warm-up; it records finished verdicts while the sandbox works on."""

    def __init__(self, course_dir, assignment, verdict_dir, db_url):
        env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autograder.grade.record", str(course_dir), assignment, str(verdict_dir), db_url],
            cwd=course_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.busy = False

    def round(self):
        """Ask for a round over what is in submitted/ now (after the one under way, if any)."""
        self.wait()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.busy = True

    def wait(self):
        if self.busy:
            self.process.stdout.readline()
            self.busy = False

    def close(self):
        self.wait()
        self.process.stdin.close()
        self.process.wait()


def _submit(course_dir, work, assignment, item, verdict):
    """Save the verdict and the notebook where nbgrader expects them; drop stale copies.

    The notebook's folder appears in submitted/ in one rename, so a recorder running at the
    same time sees either nothing or the whole submission."""
    (work / "verdicts" / f"{item.student_id}.json").write_text(json.dumps(verdict))
    for stale in ("autograded", "feedback"):
        shutil.rmtree(course_dir / stale / item.student_id / assignment, ignore_errors=True)
    staging = work / "staging" / item.student_id / assignment
    shutil.rmtree(staging.parent, ignore_errors=True)
    staging.mkdir(parents=True)
    nbformat.write(item.notebook, staging / f"{assignment}.ipynb")
    target = course_dir / "submitted" / item.student_id / assignment
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)


def _run_all(pool, recorder, items, assignment, limits, jobs, progress, course_dir, work):
    """Run, judge and record every item; returns {student_id: verdict}."""
    calls = trusted.plan(assignment)
    # One secret challenge per batch, drawn now: students cannot know it in advance, and the
    # judge's slower references are computed once for the whole batch.
    challenges = trusted.draw_challenges(assignment)
    results = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(items), desc=f"grading {assignment}", unit="notebook", file=sys.stderr)

    def one(item):
        job = trusted.job(item.notebook, assignment, calls, challenges, limits)
        return item, trusted.verdicts(item.notebook, assignment, job, pool.run(job))

    with ThreadPoolExecutor(jobs) as threads:
        for future in as_completed([threads.submit(one, item) for item in items]):
            item, verdict = future.result()
            results[item.student_id] = verdict = dict(verdict, key=item.key)
            _submit(course_dir, work, assignment, item, verdict)
            if len(results) == len(items) // 2 and len(items) >= 8:
                recorder.round()
            if bar:
                bar.update()
    if bar:
        bar.close()
        print("recording the verdicts and writing feedback with nbgrader ...", file=sys.stderr)
    recorder.round()
    recorder.wait()
    return results


def _scores(db_url, assignment, students):
    """{student: {part: score}} from the gradebook."""
    parts = parts_of(course.source_notebook(assignment))
    table = {}
    with Gradebook(db_url) as gb:
        for student in students:
            try:
                notebook = gb.find_submission_notebook(assignment, assignment, student)
            except MissingEntry:
                continue
            by_id = {grade.name: grade.score for grade in notebook.grades}
            table[student] = {part: sum(by_id.get(g, 0) for g in ids) for part, ids in parts}
    return table


def _write_reports(work, assignment, items, scores, verdicts):
    maxima = max_scores(assignment)
    total_max = sum(maxima.values())
    rows = []
    for item in items:
        student = item.student_id
        notes = list(item.notes)
        if student in verdicts and verdicts[student].get("note"):
            notes.append(verdicts[student]["note"])
        if item.notebook is None:
            status, score, parts = "unusable", 0, {p: 0 for p in maxima}
            notes.insert(0, item.reason)
        elif student in scores:
            status, parts = "graded", scores[student]
            score = sum(parts.values())
        else:
            status, score, parts = "error", 0, {p: 0 for p in maxima}
            notes.append("nbgrader did not record a grade for this submission")
        rows.append({"input": item.entry.source, "student_id": student, "status": status,
                     "score": f"{score:g}", "max_score": f"{total_max:g}",
                     **{f"{p} /{maxima[p]:g}": f"{parts[p]:g}" for p in maxima}, "notes": "; ".join(n for n in notes if n)})
    with open(work / "grades.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["input"])
        writer.writeheader()
        writer.writerows(rows)
    graded = [r for r in rows if r["status"] == "graded"]
    with open(work / "pass_rates.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["part", "max_score", "full_marks", "graded", "pass_rate"])
        for p in maxima:
            full = sum(float(r[f"{p} /{maxima[p]:g}"]) == maxima[p] for r in graded)
            writer.writerow([p, maxima[p], full, len(graded), f"{full / len(graded):.2f}" if graded else ""])
    _histogram(work / "summary.png", assignment, [float(r["score"]) for r in graded], total_max,
               not_graded=len(rows) - len(graded))
    return rows


def _histogram(path, assignment, totals, total_max, not_graded):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(totals, bins=[i * total_max / 10 for i in range(11)], edgecolor="black")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"score (out of {total_max:g})")
    ax.set_ylabel("submissions")
    title = f"{assignment}: {len(totals)} graded submissions"
    ax.set_title(title + (f" ({not_graded} not gradable)" if not_graded else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grade(assignment, inputs, course_dir=course.ROOT, roster=None, jobs=None, force=False,
          limits=None, sandbox=True, progress=True, scheduler=None, db_url=None):
    """Grade everything in ``inputs``; returns the rows of grades.csv.

    ``scheduler``: a Dask scheduler's address (or a Dask cluster object), to run the submissions on its workers;
    ``db_url``: the gradebook's database (default: nbgrader's configured one)."""
    course_dir = Path(course_dir).resolve()
    limits = limits or Limits()
    db_url = course.db_url(course_dir, db_url)
    if scheduler is not None:
        from .cluster import DaskPool
        pool = DaskPool(scheduler, sandbox=sandbox)
    else:
        jobs = jobs or os.cpu_count() or 1
        if sandbox and not bwrap_available():
            raise SystemExit("bubblewrap (bwrap) is not available: install it (apt-get install bubblewrap) "
                             "or pass --no-sandbox to run submissions without isolation.")
        pool = Pool(jobs, sandbox=sandbox)
    work = course_dir / "grading" / assignment
    shutil.rmtree(work / "intake", ignore_errors=True)
    (work / "verdicts").mkdir(parents=True, exist_ok=True)
    _ensure_assignment(course_dir, assignment, db_url)
    recorder = _Recorder(course_dir, assignment, work / "verdicts", db_url)
    warming = threading.Thread(target=pool.start)  # workers warm up while intake runs
    warming.start()
    try:
        items = intake(inputs, assignment, work / "intake", roster=roster, course_dir=course_dir)
        verdicts, to_run = {}, []
        for item in items:
            if item.notebook is None:
                continue
            key = _key(item.notebook, assignment)
            cached = work / "verdicts" / f"{item.student_id}.json"
            if not force and cached.exists():
                saved = json.loads(cached.read_text())
                if saved.get("key") == key and (course_dir / "autograded" / item.student_id / assignment).exists():
                    verdicts[item.student_id] = saved
                    continue
            item.key = key
            to_run.append(item)
        warming.join()
        if scheduler is not None:
            threads = pool.started()  # says why when the cluster cannot be used
            jobs = jobs or threads    # by default, as many submissions in flight as it has threads
        if to_run:
            verdicts.update(_run_all(pool, recorder, to_run, assignment, limits, jobs, progress, course_dir, work))
    finally:
        warming.join()
        pool.close()
        recorder.close()
    scores = _scores(db_url, assignment, [item.student_id for item in items])
    return _write_reports(work, assignment, items, scores, verdicts)
