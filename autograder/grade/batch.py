"""Batch grading an instructor can trust: ``python -m autograder grade ASSIGNMENT INPUT...``.

1. **Intake** (``intake/``): folders of Colab downloads, LMS zips or
   nbgrader's ``submitted/`` tree become one entry per file; broken files get
   a reason, notebooks are rebuilt on the release's skeleton.
2. **Run** (``sandbox/``): each usable notebook runs in a sandboxed, warm
   worker, in parallel on all cores, with graded cells replaced by probes
   that only observe; with ``--scheduler``, on the workers of a Dask
   cluster instead (``cluster.py``), everything else staying here.
3. **Judge** (``trusted.py``): the observations are judged against
   challenges drawn secretly for each submission, here or, for more than a
   few submissions, in judging processes beside this one (``judging.py``).
4. **Record** with nbgrader's own API (``recording.py``): as soon as a verdict
   is judged it goes through nbgrader's autograde (ApplyVerdicts +
   SaveAutoGrades) into the gradebook and its generate_feedback writes the
   HTML feedback, in several recorder processes while the sandbox works on;
   on a cluster with a PostgreSQL gradebook, in recorders on its workers
   (``cluster_recording.py``).
5. **Report** (``report.py``): this run's rows (one per input file, one per
   roster student without a file) in ``grading/<assignment>/runs/``, and
   ``grades.csv``, ``summary.png``, ``pass_rates.csv`` and the LMS files
   over every student of the assignment.

Re-running skips submissions whose file is unchanged since they were graded
(before restoring them, and without starting the sandbox when nothing is
left to do), unless ``--force``; a file that restoring refused keeps its
reason while its bytes are unchanged (``refused.json``), so it is not
restored again either.
"""
import hashlib
import json
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path


from .. import course
from . import trusted
from . import report
from .intake import collect, read_roster, restore_entries, restoring, roster_missing
from .intake.collect import NEEDS_ROSTER
from .gradebook import ensure_indexes, setup_lock, shared_gradebook, use_write_ahead_log
from .judging import Judges
from .nbgrader_cli import nbgrader
from .recording import Recorders
from .sandbox.pool import Limits, Pool, bwrap_available

GRADER_VERSION = "1"
# On a cluster, up to this many submissions are judged in this process; more, in :class:`Judges`'
# processes (starting them costs about what judging a few submissions here does), which keep the
# grader's own serial share per submission small. On one machine the grader's process judges: its
# cores are the workers' and recorders', and two more processes to start cost more than they save.
JUDGED_HERE = 4


def _key(text, source, assignment):
    """What a cached verdict depends on: the notebook as graded (its text, as intake wrote it), the
    assignment's source (bytes) and this grader."""
    digest = hashlib.sha256()
    for part in (GRADER_VERSION, assignment, source, text):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()


def _ensure_assignment(course_dir, assignment, db_url):
    """The gradebook knows the assignment (nbgrader generate_assignment records its graded cells) and
    has the indexes recording needs (``gradebook.ensure_indexes``); a SQLite gradebook is in WAL mode
    (``gradebook.use_write_ahead_log``)."""
    from nbgrader.api import Gradebook, MissingEntry

    with setup_lock(db_url):  # another grader may be setting up the same gradebook
        with Gradebook(db_url) as gb:
            try:
                gb.find_assignment(assignment)
                known = True
            except MissingEntry:
                known = False
        if not known:
            print(f"setting up the gradebook for {assignment} (nbgrader generate_assignment {assignment}, "
                  "once per course) ...", file=sys.stderr)
            nbgrader(course_dir, "generate_assignment", assignment, "--force", f"--CourseDirectory.db_url={db_url}")
        ensure_indexes(db_url)
        use_write_ahead_log(db_url)


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
    (staging / f"{assignment}.ipynb").write_text(item.text, encoding="utf-8")
    target = course_dir / "submitted" / item.student_id / assignment
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)


def _run_all(pool, judge, recorder, items, at_most, assignment, limits, jobs, progress, course_dir, work, ran_all):
    """Run, judge (with ``judge``: ``trusted.verdicts`` or :class:`Judges`' ``verdicts``) and record
    every item of ``items``, an iterable (intake's notebooks as they are restored, ``at_most`` of
    them); returns {student_id: verdict}. ``ran_all()`` is called once the last notebook has run,
    before the recording is waited for."""
    calls = trusted.plan(assignment)
    results, guard = {}, threading.Lock()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=at_most, desc=f"grading {assignment}", unit="notebook", file=sys.stderr)

    def one(item):
        # A secret challenge per submission, drawn here: no record can be carried from one
        # submission (or one feedback page) to another.
        job = trusted.job(item.notebook, assignment, calls, trusted.draw_challenges(assignment), limits)
        verdict = dict(judge(item.notebook, assignment, job, pool.run(job)), key=item.key, input_key=item.input_key)
        _submit(course_dir, work, assignment, item, verdict)
        recorder.record(item.student_id)
        with guard:
            results[item.student_id] = verdict
            if bar:
                bar.update()

    with ThreadPoolExecutor(jobs) as threads:
        futures = [threads.submit(one, item) for item in items]  # each sent as soon as it is restored
        if bar:
            with guard:
                bar.total = len(futures)
                bar.refresh()
        for future in as_completed(futures):
            future.result()
    ran_all()
    if bar:
        bar.close()
        if results:
            print("recording the verdicts and writing feedback with nbgrader ...", file=sys.stderr)
    recorder.wait()
    if recorder.failed:
        print(f"warning: nbgrader could not record {', '.join(sorted(recorder.failed))}", file=sys.stderr)
    return results


class Rows(list):
    """The run's rows (one per input file, one per roster student without a file), with
    ``messages``: what the instructor should read (skipped, removed, left blank)."""
    messages = ()


def _input_key(entry, assignment):
    """What a cached verdict depends on, known before restoring: the file's bytes, its student id,
    the assignment's source and this grader."""
    digest = hashlib.sha256()
    for part in (GRADER_VERSION, assignment, entry.student_id, entry.sha256,
                 course.source_notebook(assignment).read_bytes()):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()


def _read_refused(work):
    """{input key: reason} of the files restoring refused in the last run."""
    path = work / "refused.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write_refused(work, refused):
    (work / "refused.json").write_text(json.dumps(refused, indent=1, sort_keys=True))


def _cached(work, course_dir, assignment, student, field, key):
    """The saved verdict for ``student`` if its ``field`` is ``key`` and nbgrader graded it; else None."""
    path = work / "verdicts" / f"{student}.json"
    if not path.exists() or not (course_dir / "autograded" / student / assignment).exists():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get(field) == key else None


def _scripts_on_path():
    """nbgrader's Gradebook runs ``alembic`` by name when it creates a gradebook: this environment's
    scripts must be on PATH, also when its Python is called by its full path without activating it."""
    scripts = os.path.dirname(sys.executable)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])


def grade(assignment, inputs, course_dir=course.ROOT, roster=None, jobs=None, force=False,
          limits=None, sandbox=True, progress=True, scheduler=None, db_url=None, recorders=None):
    """Grade everything in ``inputs``; returns the run's rows (:class:`Rows`).

    ``scheduler``: a Dask scheduler's address (or a Dask cluster object), to run the submissions on its workers;
    ``db_url``: the gradebook's database (default: nbgrader's configured one);
    ``recorders``: at most this many nbgrader recorder processes (default: one per core)."""
    course_dir = Path(course_dir).resolve()
    _scripts_on_path()
    limits = limits or Limits()
    if scheduler is None:
        jobs = jobs or os.cpu_count() or 1
        if sandbox and not bwrap_available():
            raise SystemExit("bubblewrap (bwrap) is not available: install it (apt-get install bubblewrap) "
                             "or pass --no-sandbox to run submissions without isolation.")
    work = course_dir / "grading" / assignment
    shutil.rmtree(work / "intake", ignore_errors=True)
    (work / "verdicts").mkdir(parents=True, exist_ok=True)
    state = report.State(work)
    entries = collect(inputs, assignment, roster=roster, workdir=work / "intake")
    known, refused = ({} if force else _read_refused(work)), {}
    fresh, input_keys = [], {}
    for entry in entries:
        key = entry.sha256 and _input_key(entry, assignment)
        if entry.reason is None and key in known:
            entry.reason = refused[key] = known[key]
        if (force or entry.reason is not None or entry.student_id not in state.rows
                or not _cached(work, course_dir, assignment, entry.student_id, "input_key", key)):
            input_keys[id(entry)] = key
            fresh.append(entry)
    to_grade = sum(e.reason is None for e in fresh)
    verdicts, items, to_run = {}, [], []
    pool = recorder = warming = judges = None
    stopping, completed = [], False

    def stop(done):
        """Stop ``done`` (the workers or the recorders) in a thread: each takes a moment to exit and be reaped."""
        if done is not None and done not in [s for s, _ in stopping]:
            thread = threading.Thread(target=done.close)
            thread.start()
            stopping.append((done, thread))

    try:
        if to_grade:
            # What is slow to start starts first and warms up meanwhile: the workers (MXNet), then
            # nbgrader's configuration and the recorders.
            if scheduler is not None:
                from .cluster import DaskPool
                pool = DaskPool(scheduler, sandbox=sandbox, limits=limits)
            else:
                pool = Pool(min(jobs, to_grade), sandbox=sandbox, limits=limits)  # regrading one file starts one
                for caveat in pool.caveats:
                    print(f"warning: {caveat}", file=sys.stderr)
            warming = threading.Thread(target=pool.start)
            warming.start()
        db_url = course.db_url(course_dir, db_url)  # imports nbgrader
        # Ids whose file another id now holds: a ghost's rows are not an entry's, so `fresh` stands.
        messages = report.remove_ghosts(course_dir, db_url, assignment, state, entries)
        if to_grade:
            on_workers = scheduler is not None and shared_gradebook(db_url)
            if on_workers:  # the workers record, into the shared gradebook; the pool stays until they have
                from .cluster_recording import DaskRecorders
                recorder = DaskRecorders(pool, course_dir, assignment, work / "verdicts", db_url)
            else:
                recorder = Recorders(course_dir, assignment, work / "verdicts", db_url, recorders)
            if scheduler is not None and to_grade > JUDGED_HERE:
                judges = Judges(assignment)
            _ensure_assignment(course_dir, assignment, db_url)  # while the workers and the recorder start
            restored = restoring(fresh, assignment, course_dir)  # from now on, in the background
            source = course.source_notebook(assignment).read_bytes()

            def runnable():
                """The restored notebooks that need a run, as intake gives them; verdicts kept on the way."""
                for item in restored:
                    items.append(item)
                    if item.notebook is None:
                        continue
                    item.key, item.input_key = _key(item.text, source, assignment), input_keys[id(item.entry)]
                    cached = None if force else _cached(work, course_dir, assignment, item.student_id, "key",
                                                        item.key)
                    if cached:
                        verdicts[item.student_id] = dict(cached, input_key=item.input_key)
                        (work / "verdicts" / f"{item.student_id}.json").write_text(
                            json.dumps(verdicts[item.student_id]))
                    else:
                        to_run.append(item)
                        yield item

            warming.join()
            if scheduler is not None:
                threads = pool.started()  # says why when the cluster cannot be used
                jobs = jobs or threads    # by default, as many submissions in flight as it has threads
            def ran_all():
                """Every notebook has run and is judged: the judges and (unless they record) the workers stop."""
                stop(judges)
                if not on_workers:
                    stop(pool)

            threading.Thread(target=report.import_plotting, daemon=True).start()
            verdicts.update(_run_all(pool, judges.verdicts if judges else trusted.verdicts, recorder, runnable(),
                                     to_grade, assignment, limits, jobs, progress, course_dir, work, ran_all))
        else:
            items = restore_entries(fresh, assignment, course_dir)  # files that cannot be graded: no work
        completed = True
    finally:
        if warming:
            warming.join()
        # Workers and recorders stop side by side, while the reports are written: every verdict is
        # recorded by now, so nothing below needs them.
        stop(pool)
        stop(recorder)
        stop(judges)
        if not completed:
            for _, thread in stopping:
                thread.join()
    try:
        return _rows_and_reports(assignment, course_dir, roster, db_url, work, state, entries, items, to_run,
                                 verdicts, refused, input_keys, messages)
    finally:
        for _, thread in stopping:
            thread.join()


def _rows_and_reports(assignment, course_dir, roster, db_url, work, state, entries, items, to_run, verdicts,
                      refused, input_keys, messages):
    """The run's rows, and the reports written from them and the gradebook."""
    _write_refused(work, refused | {input_keys[id(i.entry)]: i.reason for i in items if i.refused})
    maxima = course.max_scores(assignment)
    scores = report.gradebook_scores(db_url, assignment)
    by_entry = {id(item.entry): item for item in items}
    ran = {id(item) for item in to_run}
    rows = Rows()
    for entry in entries:
        page = course_dir / "feedback" / entry.student_id / assignment / f"{assignment}.html"
        if id(entry) in by_entry:
            item = by_entry[id(entry)]
            this_run = "graded" if id(item) in ran else "unchanged, skipped" if item.notebook is not None else ""
            rows.append(report.run_row(item, scores, verdicts.get(item.student_id), maxima, this_run,
                                       has_feedback=page.exists()))
        else:
            rows.append(report.skipped_row(state.rows[entry.student_id], entry.source, page.exists()))
    if roster:
        rows += [report.missing_row(s, maxima) for s in roster_missing(read_roster(roster), entries)]
    skipped = sum(r["this_run"] == "unchanged, skipped" for r in rows)
    if skipped:
        messages.insert(0, f"{skipped} unchanged, skipped (--force regrades them)")
    unnamed = [r["input"] for r in rows if NEEDS_ROSTER in r["notes"]]
    if unnamed:
        messages.append(f"{len(unnamed)} files name no student ({', '.join(unnamed)}): their ids come from the "
                        "assignment's name; grade with a roster (--roster) to say whose they are")
    rows.messages = messages + report.write(work, course_dir, db_url, assignment, rows, state, roster)
    return rows
