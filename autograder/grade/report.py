"""What the batch grader writes for people and for the LMS, in ``grading/<assignment>/``.

Runs add up: each run's input rows go to ``runs/<time>.csv`` (one row per
input file, plus a ``missing`` row for each roster student who sent
nothing), and ``students.json`` keeps each student's latest row across runs.
From it, and from the gradebook (which also holds notebooks graded by plain
``nbgrader autograde``), come the files that cover every student of the
assignment:

* ``grades.csv``: one row per student, per-part scores, notes;
* ``summary.png`` (score histogram) and ``pass_rates.csv`` (per part);
* ``scores.csv``: ``student_id,score``, the plainest file an LMS imports;
* ``canvas_import.csv`` when the roster was a Canvas gradebook export: that
  export's student columns and the assignment's column, filled in, ready for
  Canvas's gradebook import (scores scaled to its "Points Possible").

A student with no usable notebook (a file that could not be read, an
ambiguous roster match, no submission) gets a blank score, never a 0, in
every file, and is listed in the run's messages. Such rows describe one
run only: the next run drops them from ``students.json`` (and so from
``grades.csv`` and ``scores.csv``), so a stray file named ``empty.ipynb``
does not become a permanent student.

Every CSV written here has a fixed column order, and no cell that a
spreadsheet would read as a formula: text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (numbers,
negative ones included, stay numbers).

Ids a roster re-maps do not linger: a student id from an earlier run whose
input file (the same path, as given) now belongs to another id is removed
from the gradebook, ``submitted/``, ``autograded/``, ``feedback/`` and
``students.json``, and the run says so.
"""
import csv
import json
import re
import shutil
import time

from .. import course
from .intake.collect import CANVAS_COLUMNS, canvas_student_id, canvas_students

NO_SCORE = {"unusable", "error", "missing"}
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def cell(value):
    """A CSV cell no spreadsheet runs as a formula: text starting with = + - @ tab or CR gets a leading '."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not NUMBER.match(text):
        return "'" + text
    return text


class SafeWriter:
    """csv.writer whose every cell goes through :func:`cell`."""

    def __init__(self, f):
        self.writer = csv.writer(f)

    def writerow(self, row):
        self.writer.writerow([cell(v) for v in row])


def _part_columns(maxima):
    return {p: f"{p} /{maxima[p]:g}" for p in maxima}


def gradebook_scores(db_url, assignment):
    """{student: {part: score}} for every submission of the assignment in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry  # here: the grader starts its workers first

    parts = course.parts_of(course.source_notebook(assignment))
    table = {}
    with Gradebook(db_url) as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return table
        for submission in submissions:
            try:
                notebook = gb.find_submission_notebook(assignment, assignment, submission.student.id)
            except MissingEntry:
                continue
            by_id = {grade.name: grade.score for grade in notebook.grades}
            table[submission.student.id] = {part: sum(by_id.get(g, 0) for g in ids) for part, ids in parts}
    return table


def run_row(item, scores, verdict, maxima, this_run, has_feedback=True):
    """The row of one input file."""
    student = item.student_id
    notes = list(item.notes)
    if verdict and verdict.get("note"):
        notes.append(verdict["note"])
    if item.notebook is None:
        status, parts = item.entry.status, None
        notes.insert(0, item.reason)
    elif student in scores:
        status, parts = "graded", scores[student]
        if not has_feedback:
            notes.append(NO_FEEDBACK)
    else:
        status, parts = "error", None
        notes.append("nbgrader did not record a grade for this submission")
    return _row(item.entry.source, student, status, parts, maxima, notes, this_run)


NO_FEEDBACK = "no feedback page: nbgrader's generate_feedback failed on this notebook"


def skipped_row(saved, source, has_feedback):
    """The row of an input file unchanged since it was graded: its saved row, noting a feedback page lost since."""
    row = dict(saved, input=source, this_run="unchanged, skipped")
    notes = [n for n in row.get("notes", "").split("; ") if n and n != NO_FEEDBACK]
    if row.get("status") == "graded" and not has_feedback:
        notes.append(NO_FEEDBACK)
    row["notes"] = "; ".join(notes)
    return row


def missing_row(student, maxima):
    return _row("", student, "missing", None, maxima, ["on the roster, but no file was received"], "")


def _row(source, student, status, parts, maxima, notes, this_run):
    """A row: no score (blank) unless the notebook was graded; the keys in :func:`row_columns` order."""
    names = _part_columns(maxima)
    return {"input": source, "student_id": student, "status": status,
            "score": f"{sum(parts.values()):g}" if parts else "", "max_score": f"{sum(maxima.values()):g}",
            **{names[p]: f"{parts[p]:g}" if parts else "" for p in maxima},
            "notes": "; ".join(n for n in notes if n), "this_run": this_run}


def row_columns(maxima):
    """The columns of the run files and grades.csv, always in this order."""
    return ["input", "student_id", "status", "score", "max_score", *_part_columns(maxima).values(), "notes",
            "this_run"]


class State:
    """``students.json``: each student's latest row, across runs."""

    def __init__(self, work):
        self.path = work / "students.json"
        self.rows = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self):
        self.path.write_text(json.dumps(self.rows, indent=1, sort_keys=True))


def remove_ghosts(course_dir, db_url, assignment, state, entries):
    """Drop earlier ids whose input file now has another id; returns the messages."""
    now = {e.student_id for e in entries}
    messages = []
    for old, row in list(state.rows.items()):
        if old in now or not row.get("input"):
            continue
        # By path, not by content: two students may well hand in identical (say, untouched) notebooks.
        heir = next((e.student_id for e in entries if e.source == row["input"]), None)
        if heir is None:
            continue
        _remove_student(course_dir, db_url, assignment, old)
        del state.rows[old]
        messages.append(f"removed {old} from an earlier run: its file {row['input']} is now {heir}'s")
    return messages


def _remove_student(course_dir, db_url, assignment, student):
    from nbgrader.api import Gradebook, MissingEntry  # here: the grader starts its workers first

    with Gradebook(db_url) as gb:
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass
        try:
            if not gb.find_student(student).submissions:
                gb.remove_student(student)
        except MissingEntry:
            pass
    for folder in ("submitted", "autograded", "feedback"):
        shutil.rmtree(course_dir / folder / student / assignment, ignore_errors=True)
        try:
            (course_dir / folder / student).rmdir()
        except OSError:
            pass
    (course_dir / "grading" / assignment / "verdicts" / f"{student}.json").unlink(missing_ok=True)


def write(work, course_dir, db_url, assignment, run_rows, state, roster=None):
    """Write the run's file and every report; returns the messages for the instructor."""
    maxima = course.max_scores(assignment)
    (work / "runs").mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_file = work / "runs" / f"{stamp}.csv"
    n = 1
    while run_file.exists():
        n += 1
        run_file = work / "runs" / f"{stamp}-{n}.csv"
    fields = row_columns(maxima)
    _write_csv(run_file, run_rows, fields)
    for student in [s for s, row in state.rows.items() if row["status"] in NO_SCORE]:
        del state.rows[student]   # rows without a score describe their own run only
    for row in run_rows:
        state.rows[row["student_id"]] = row
    scores = gradebook_scores(db_url, assignment)
    columns = _part_columns(maxima)
    for student, parts in scores.items():
        row = state.rows.get(student)
        if row is None:
            row = state.rows[student] = _row("", student, "graded", parts, maxima,
                                             ["graded outside the batch grader (nbgrader autograde)"], "")
        if row["status"] == "graded":
            row.update({"score": f"{sum(parts.values()):g}", **{columns[p]: f"{parts[p]:g}" for p in maxima}})
    for student, row in state.rows.items():
        if row["status"] == "graded" and student not in scores:
            row.update(status="error", notes="no grade in the gradebook any more")
    state.save()
    everyone = [state.rows[s] for s in sorted(state.rows)]
    _write_csv(work / "grades.csv", everyone, [c for c in fields if c != "this_run"])
    graded = [r for r in everyone if r["status"] == "graded"]
    with open(work / "pass_rates.csv", "w", newline="") as f:
        writer = SafeWriter(f)
        writer.writerow(["part", "max_score", "full_marks", "graded", "pass_rate"])
        for p in maxima:
            full = sum(float(r[columns[p]]) == maxima[p] for r in graded)
            writer.writerow([p, maxima[p], full, len(graded), f"{full / len(graded):.2f}" if graded else ""])
    _histogram(work / "summary.png", assignment, [float(r["score"]) for r in graded], sum(maxima.values()),
               not_graded=len(everyone) - len(graded))
    blank = {r["student_id"]: r["status"] for r in everyone if r["status"] in NO_SCORE}
    with open(work / "scores.csv", "w", newline="") as f:
        writer = SafeWriter(f)
        writer.writerow(["student_id", "score"])
        for r in everyone:
            writer.writerow([r["student_id"], "" if r["student_id"] in blank else r["score"]])
    messages = [f"this run's files: {run_file.relative_to(course_dir)}; all {len(everyone)} students of "
                f"{assignment}: {(work / 'grades.csv').relative_to(course_dir)}, scores.csv"]
    if roster:
        messages += canvas_import(roster, work / "canvas_import.csv", assignment, state.rows, blank,
                                  sum(maxima.values()))
    if blank:
        messages.append(f"{len(blank)} students have no score (left blank in the LMS files): "
                        + ", ".join(f"{s} ({status})" for s, status in sorted(blank.items())))
    return messages


def canvas_import(roster, target, assignment, rows, blank, total_max):
    """Fill the assignment's column of a Canvas gradebook export; [] when the roster is not one."""
    with open(roster, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        if not set(CANVAS_COLUMNS) <= set(header):
            return []
        records = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    extra = [c for c in header if c not in CANVAS_COLUMNS and c != "Integration ID"]
    named = [c for c in extra if assignment.lower() in c.lower()]
    column = named[0] if len(named) == 1 else extra[0] if len(extra) == 1 else None
    if column is None:
        return [f"canvas_import.csv not written: the export needs one column for {assignment} "
                f"(a header holding its name), found: {', '.join(extra) or 'none'}"]
    possible = next((r.get(column) for r in records if r.get("Student", "").strip() == "Points Possible"), "")
    try:
        scale = float(possible) / total_max
    except ValueError:
        scale = 1.0
    keep = [c for c in header if c in CANVAS_COLUMNS or c == "Integration ID"] + [column]
    with open(target, "w", newline="") as f:
        writer = SafeWriter(f)
        writer.writerow(keep)
        for record in canvas_students(iter(records)):
            sid = canvas_student_id(record)
            row = rows.get(sid)
            score = "" if row is None or sid in blank else f"{float(row['score']) * scale:g}"
            writer.writerow([record.get(c, "") for c in keep[:-1]] + [score])
    unknown = [r["Student"] for r in canvas_students(iter(records)) if canvas_student_id(r) not in rows]
    note = f"; {len(unknown)} students of the export have no row here (blank)" if unknown else ""
    return [f"Canvas gradebook import: {target.name} (column {column!r}, scores out of "
            f"{total_max * scale:g}){note}"]


def _write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        writer = SafeWriter(f)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([row.get(field, "") for field in fields])


def import_plotting():
    """Import what ``summary.png`` needs (matplotlib, about a second). The batch grader calls it in
    a thread while the sandbox runs the notebooks, when this process has nothing else to do."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import matplotlib.ticker  # noqa: F401


def _histogram(path, assignment, totals, total_max, not_graded):
    import_plotting()
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
