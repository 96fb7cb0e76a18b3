"""Batch grading an instructor can trust: ``python -m autograder grade ASSIGNMENT INPUT...``.

1. **Intake** (``intake/``): folders of Colab downloads, LMS zips or
   nbgrader's ``submitted/`` tree become one entry per file; broken files get
   a reason, notebooks are rebuilt on the release's skeleton.
2. **Run** (``sandbox/``): each usable notebook runs in a sandboxed, warm
   worker, in parallel on all cores, with graded cells replaced by probes
   that only observe.
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
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from . import course, trusted
from .demo import max_scores, parts_of
from .intake import intake
from .nbgrader_cli import NbgraderError, nbgrader
from .sandbox.pool import Limits, Pool, bwrap_available

GRADER_VERSION = "1"


def _key(nb, assignment):
    """What a cached verdict depends on: the notebook as graded, the assignment's source and this grader."""
    digest = hashlib.sha256()
    for part in (GRADER_VERSION, assignment, course.source_notebook(assignment).read_bytes(),
                 nbformat.writes(nb).encode()):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()


def _ensure_assignment(course_dir, assignment):
    """The gradebook knows the assignment (nbgrader generate_assignment records its graded cells)."""
    db = course_dir / "gradebook.db"
    if db.exists():
        with Gradebook(f"sqlite:///{db}") as gb:
            try:
                gb.find_assignment(assignment)
                return
            except MissingEntry:
                pass
    nbgrader(course_dir, "generate_assignment", assignment, "--force")


def _run_all(pool, items, assignment, limits, jobs, progress):
    """{student_id: verdict} for the items that need running."""
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
        return item.student_id, trusted.verdicts(item.notebook, assignment, job, pool.run(job))

    with ThreadPoolExecutor(jobs) as threads:
        for future in as_completed([threads.submit(one, item) for item in items]):
            student, verdict = future.result()
            results[student] = verdict
            if bar:
                bar.update()
    if bar:
        bar.close()
    return results


def _record(course_dir, assignment, students, verdict_dir):
    """Plain ``nbgrader autograde`` (ApplyVerdicts in place of Execute) and ``generate_feedback``.

    Only the students given are processed: their old autograded copies are removed first, and
    autograde without --force skips the others. Returns {student: problem} for any nbgrader refused.
    """
    if not students:
        return {}
    for student in students:
        shutil.rmtree(course_dir / "autograded" / student / assignment, ignore_errors=True)
    failures = {}
    try:
        nbgrader(course_dir, "autograde", assignment, env={"RESNET_VERDICTS": str(verdict_dir)})
    except NbgraderError as error:
        failures = {s: "nbgrader could not record this submission" for s in students
                    if not (course_dir / "autograded" / s / assignment).exists()}
        if len(failures) == len(students):
            raise error
    nbgrader(course_dir, "generate_feedback", assignment, "--force")
    return failures


def _scores(course_dir, assignment, students):
    """{student: {part: score}} from the gradebook."""
    parts = parts_of(course.source_notebook(assignment))
    table = {}
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
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
    _histogram(work / "summary.png", assignment, [float(r["score"]) for r in rows], total_max)
    return rows


def _histogram(path, assignment, totals, total_max):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(totals, bins=[i * total_max / 10 for i in range(11)], edgecolor="black")
    ax.set_xlabel(f"score (out of {total_max:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"{assignment}: {len(totals)} submissions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grade(assignment, inputs, course_dir=course.ROOT, roster=None, jobs=None, force=False,
          limits=None, sandbox=True, progress=True):
    """Grade everything in ``inputs``; returns the rows of grades.csv."""
    course_dir = Path(course_dir).resolve()
    limits = limits or Limits()
    jobs = jobs or os.cpu_count() or 1
    if sandbox and not bwrap_available():
        raise SystemExit("bubblewrap (bwrap) is not available: install it (apt-get install bubblewrap) "
                         "or pass --no-sandbox to run submissions without isolation.")
    work = course_dir / "grading" / assignment
    shutil.rmtree(work / "intake", ignore_errors=True)
    (work / "verdicts").mkdir(parents=True, exist_ok=True)
    _ensure_assignment(course_dir, assignment)
    pool = Pool(jobs, sandbox=sandbox)
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
        fresh = _run_all(pool, to_run, assignment, limits, jobs, progress) if to_run else {}
    finally:
        warming.join()
        pool.close()

    for item in to_run:
        verdict = dict(fresh[item.student_id], key=item.key)
        verdicts[item.student_id] = verdict
        (work / "verdicts" / f"{item.student_id}.json").write_text(json.dumps(verdict))
        target = course_dir / "submitted" / item.student_id / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(item.notebook, target)
    failures = _record(course_dir, assignment, [item.student_id for item in to_run], work / "verdicts")
    for student, message in failures.items():
        verdicts[student]["note"] = "; ".join(filter(None, [verdicts[student].get("note"), message]))
    scores = _scores(course_dir, assignment, [item.student_id for item in items])
    return _write_reports(work, assignment, items, scores, verdicts)
