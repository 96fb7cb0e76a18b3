"""The batch grader on real notebooks: samples, broken files and an attack suite in one batch.

One batch is graded for the whole module (it takes about a minute): the
bundled samples must get exactly the scores plain nbgrader gives them, every
input file must get exactly one row, broken files a clear reason, and no
attack may raise a score, reach the instructor's files or the network, leave
a process behind, take the host's free processes or memory (what a sandbox
writes is memory: the host's shared memory is what grows), or stop the
batch. What the host has is sampled while the batch runs.
"""
import copy
import csv
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.assign.demo import prepare_course
from autograder.grade.batch import grade
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade.sandbox.pool import SHM_BYTES, Limits, bwrap_available

ATTACKS = course.ROOT / "tests" / "fixtures" / "attacks" / "resnet18"
FULL = {"residual": 35, "stem": 10, "resnet_block": 15, "resnet18": 15, "print_layer_shapes": 5,
        "parameter_counts": 8, "resnet18_complete": 12}
# Attacks in the first answer cell replace Residual: nothing can be earned from that cell on
# (transformers erase every later cell; the others leave Residual broken).
STOPPED_AT_RESIDUAL = dict(FULL, residual=0, resnet18_complete=0)
STOPPED_AT_COUNTS = dict(FULL, parameter_counts=0, resnet18_complete=0)
ZERO = {part: 0 for part in FULL}
EXPECTED_ATTACKS = {
    "input_transformer": ZERO, "ast_transformer": ZERO, "patched_libraries": ZERO,
    "always_equal": dict(STOPPED_AT_RESIDUAL, parameter_counts=0),
    "instructor_files": STOPPED_AT_RESIDUAL, "background_process": STOPPED_AT_RESIDUAL,
    "network": STOPPED_AT_RESIDUAL,
    "exits_early": dict(FULL, parameter_counts=0),  # SystemExit ends the cell, not the notebook
    "hard_exit": STOPPED_AT_COUNTS, "kills_itself": STOPPED_AT_COUNTS,
    # The worker is the sandbox's init, which the kernel shields from the notebook's signals; the
    # helper that relays this notebook's records is not: the notebook stops there, the worker goes on.
    "kills_the_grader": STOPPED_AT_COUNTS, "infinite_loop": STOPPED_AT_COUNTS,
    # The limit holds; whether the notebook survives its MemoryError (and scores the whole
    # network) depends on where the last allocation failed, so this one is an upper bound.
    "memory_bomb": dict(FULL, parameter_counts=0),
    "fork_loop": dict(FULL, parameter_counts=0), "disk_filler": dict(FULL, parameter_counts=0),
    "file_flood": STOPPED_AT_COUNTS,
    "recorder_scratch": dict(FULL, parameter_counts=0),  # finds nothing to forge: its own cell only
    # Markup aimed at the page's cell-by-cell soup, and the whole-network observer replaced: its own
    # cell, and the whole network (the observations it makes no longer match the secret weights).
    "page_and_canonical": STOPPED_AT_COUNTS,
    # Zero weights through the whole-network observer's new path and Gluon's own, the gradebook's
    # WAL files sought and written, the worker's death signal and pid 1 tried, a process left behind.
    "wal_and_shaped_canonical": STOPPED_AT_COUNTS,
    # Its DLPack patch no longer reaches the whole-network observer, which writes the weights into
    # MXNet's own arrays: its own cell only.
    "dlpack_distutils_validation": dict(FULL, parameter_counts=0),
    # Its shell, the stock layers' shape rules, the weights' NumPy view and their drawn blocks
    # meddled with: its own cell and the whole network; nothing reaches the next notebook's shell.
    "shell_shapes_and_views": STOPPED_AT_COUNTS,
    # A result of its own for the whole network, written through the Dense shape rule while that
    # observer runs (the real observation would be right); sklearn and scipy.stats planted for the
    # next notebook: its own cell, and the forged part.
    "forged_through_shape_rule": STOPPED_AT_COUNTS,
}

LIMITS = Limits(wall_seconds=25, cpu_seconds=60, memory_bytes=3 << 30)

# Skipped only off CI: CI must show that the sandbox holds.
pytestmark = pytest.mark.skipif(not bwrap_available() and not os.environ.get("CI"),
                                reason="bubblewrap is needed for sandboxed grading")


def _release():
    return nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)


def _reference_answers():
    return read_answers(course.SAMPLES / "resnet18" / "correct_reference.py")


def _bad_inputs(inbox):
    correct = fill(_release(), _reference_answers())
    (inbox / "empty.ipynb").write_bytes(b"")
    (inbox / "not_json.ipynb").write_text('{"cells": [')
    (inbox / "nbformat3.ipynb").write_text(json.dumps(nbformat.convert(copy.deepcopy(correct), 3)))
    stripped = nbformat.from_dict(correct)
    for cell in stripped.cells:
        cell.metadata = {}
    nbformat.write(stripped, inbox / "Copy of stripped_metadata.ipynb")
    deleted = nbformat.from_dict(correct)
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    nbformat.write(deleted, inbox / "deleted_tests.ipynb")
    doubled = nbformat.from_dict(correct)
    doubled.cells = [copy for c in doubled.cells
                     for copy in ([c, c] if c.metadata.get("nbgrader", {}).get("grade") else [c])]
    nbformat.write(doubled, inbox / "duplicated_tests.ipynb")
    other = nbformat.read(course.RELEASE / "bottleneck" / "bottleneck.ipynb", as_version=4)
    nbformat.write(fill(other, read_answers(course.SAMPLES / "bottleneck" / "correct_reference.py")),
                   inbox / "wrong_assignment.ipynb")
    huge = nbformat.from_dict(correct)
    huge.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (50 << 20))]
    nbformat.write(huge, inbox / "huge_output.ipynb")


def _hostile_page(port):
    """A notebook whose own cells try to run script, load from outside (the loopback ``port``) and
    hide the true summary behind a forged one; its make_stem raises a message built to end the
    summary table. Its answers are the release's stubs, and residual's is right: 35 / 100."""
    answers = {"residual": _reference_answers()["residual"], "stem": (
        "def make_stem():\n    raise ValueError('</td></tr></table><img src=http://127.0.0.1:%d/message.png>"
        "<script>document.title = \"PWNED message\"</script>')" % port)}
    nb = fill(_release(), answers)
    remote = f"http://127.0.0.1:{port}"
    mine = [
        "<script>document.title = 'PWNED'; document.body.insertAdjacentHTML('beforeend', "
        "'<p id=\"pwned\">pwned</p>')</script>",
        f'<img src="{remote}/onerror.png" onerror="document.title = \'PWNED img\'">',
        f'<iframe src="{remote}/frame.html"></iframe><link rel="stylesheet" href="{remote}/style.css">',
        f"[collect your prize](javascript:document.title='PWNED link') ![badge]({remote}/markdown.png)",
        "<style>table.part-summary { display: none }</style>\n\n"
        '<table class="part-summary"><tr><td>residual</td><td class="points">100 / 100</td></tr></table>',
    ]
    cells = [nbformat.v4.new_markdown_cell(text) for text in mine]
    forged = nbformat.v4.new_markdown_cell('<table class="part-summary"><tr><td>forged</td></tr></table>')
    forged.metadata["resnet_part_summary"] = True
    raw = nbformat.v4.new_raw_cell(f"<script>document.title = 'PWNED raw'</script><img src='{remote}/raw.png'>")
    raw.metadata["raw_mimetype"] = "text/html"
    nb.cells = nb.cells[:3] + cells + [forged, raw] + nb.cells[3:]
    return nb


def _hostile_inputs(inbox, port):
    """Files that must not stop the batch, steal an id or reach a screen, next to correct controls."""
    release, correct = _release(), fill(_release(), _reference_answers())
    nbformat.write(_hostile_page(port), inbox / "hostile_page.ipynb")
    with_tag = json.loads(nbformat.writes(correct))
    with_tag["cells"].append({"cell_type": "markdown", "id": "mine", "metadata": {"tags": ["todo,later"]},
                              "source": "my notes"})
    (inbox / "comma_tag.ipynb").write_text(json.dumps(with_tag))
    deep = '{"x": ' * 600 + "1" + "}" * 600
    (inbox / "deep_metadata.ipynb").write_text(
        nbformat.writes(correct).replace('"metadata": {', f'"metadata": {{"deep": {deep}, ', 1))
    nbformat.write(correct, inbox / "bob.ipynb")
    nbformat.write(release, inbox / "Copy of bob.ipynb")   # someone else's blank notebook
    nbformat.write(correct, inbox / "resnet18.ipynb")      # the name the student guide asks for
    answers = dict(_reference_answers())
    answers["residual"] = answers["residual"].replace("kernel_size=1, strides=strides)", "kernel_size=1)")
    assert answers["residual"] != _reference_answers()["residual"]
    nbformat.write(fill(release, answers), inbox / "forgot_stride.ipynb")


def _own_processes():
    """Processes descending from this one (the grader, its workers and all they started)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    return len(ours) - 1


def _shared_memory():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith("Shmem:"))


class HostWatch:
    """Samples, while the batch runs, what an attack could take from the host."""

    def __init__(self):
        self.before = self.sample()
        self.worst = dict(self.before)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def sample(self):
        return {"processes": _own_processes(), "shared_memory": _shared_memory()}

    def run(self):
        while not self.stop.wait(0.1):
            for key, value in self.sample().items():
                self.worst[key] = max(self.worst[key], value)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.after = self.sample()


def _hidden_marker_answers():
    """A correct answer whose own code holds nbgrader's marker text, in a comment and a string."""
    answers = dict(_reference_answers())
    answers["residual"] = ('# BEGIN HIDDEN TESTS is what nbgrader looks for; this is my own comment\n'
                           'MY_NOTE = "### BEGIN HIDDEN TESTS"\n' + answers["residual"])
    return answers


def _student_edition_notebook(folder):
    from autograder.assign.publish import publish
    publish("students", folder, "example-course/resnet-students")
    return nbformat.read(folder / "release" / "resnet18" / "resnet18.ipynb", as_version=4)


def write_samples_and_attacks(inbox, course_dir, port):
    """The bundled samples and the attack suite as notebooks in ``inbox`` (used by test_dask_grading)."""
    for student, path in samples("resnet18", course.SAMPLES).items():
        nbformat.write(fill(_release(), read_answers(path)), inbox / f"{student}.ipynb")
    write_attacks(inbox, course_dir, port)


def write_attacks(inbox, course_dir, port):
    """``attack_<name>.ipynb`` in ``inbox``: the correct answer with each attack of the suite in its cell."""
    release = _release()
    for attack in sorted(ATTACKS.glob("*.py")):
        code = (attack.read_text().replace('os.environ.get("ATTACK_PORT", "1")', f'"{port}"')
                .replace('os.environ.get("ATTACK_COURSE", "/nonexistent")', repr(str(course_dir))))
        answers = dict(_reference_answers())
        patched = ATTACKS / f".{attack.stem}.tmp"
        patched.write_text(code)
        answers.update(read_answers(patched))
        patched.unlink()
        nbformat.write(fill(release, answers), inbox / f"attack_{attack.stem}.ipynb")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    course_dir = prepare_course(root / "course")
    inbox = root / "inbox"
    inbox.mkdir()
    release = _release()
    edition = _student_edition_notebook(root / "edition")
    for student, path in samples("resnet18", course.SAMPLES).items():
        nbformat.write(fill(release, read_answers(path)), inbox / f"{student}.ipynb")
        # The same answers in the notebook students get from the published edition.
        nbformat.write(fill(edition, read_answers(path)), inbox / f"edition_{student}.ipynb")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    write_attacks(inbox, course_dir, listener.getsockname()[1])
    nbformat.write(fill(release, _hidden_marker_answers()), inbox / "hidden_marker.ipynb")
    _bad_inputs(inbox)
    _hostile_inputs(inbox, listener.getsockname()[1])
    with HostWatch() as host:
        rows = grade("resnet18", [str(inbox)], course_dir=course_dir, jobs=2, progress=False,
                     limits=LIMITS)
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    port = listener.getsockname()[1]
    listener.close()
    return {"rows": {Path(r["input"]).name: r for r in rows}, "course": course_dir, "inbox": inbox,
            "connected": connected, "host": host, "messages": rows.messages, "port": port}


def _parts(row):
    return {key.split(" /")[0]: float(value) for key, value in row.items() if " /" in key}


def test_one_row_per_input_file(batch):
    files = sorted(p.name for p in batch["inbox"].iterdir())
    assert sorted(batch["rows"]) == files
    with open(batch["course"] / "grading" / "resnet18" / "grades.csv") as f:
        assert len(list(csv.DictReader(f))) == len(files)


def test_samples_get_the_same_scores_as_plain_nbgrader(batch):
    expected = json.loads((course.SAMPLES / "resnet18" / "expected_scores.json").read_text())
    for student, parts in expected.items():
        assert _parts(batch["rows"][f"{student}.ipynb"]) == parts, student


def test_notebooks_from_the_student_edition_get_the_same_scores(batch):
    students = samples("resnet18", course.SAMPLES)
    assert students
    for student in students:
        row = batch["rows"][f"edition_{student}.ipynb"]
        assert row["status"] == "graded" and "repaired" not in row["notes"].lower(), row
        assert _parts(row) == _parts(batch["rows"][f"{student}.ipynb"]), student


@pytest.mark.parametrize("attack", sorted(EXPECTED_ATTACKS))
def test_no_attack_raises_a_score(batch, attack):
    row = batch["rows"][f"attack_{attack}.ipynb"]
    assert row["status"] == "graded"
    if attack == "memory_bomb":
        got = _parts(row)
        assert all(got[p] <= EXPECTED_ATTACKS[attack][p] for p in FULL) and got["parameter_counts"] == 0
        assert got["residual"] == FULL["residual"]  # parts before the bomb keep their marks
    else:
        assert _parts(row) == EXPECTED_ATTACKS[attack]


def test_attacks_are_all_in_the_suite():
    assert sorted(EXPECTED_ATTACKS) == sorted(p.stem for p in ATTACKS.glob("*.py"))


def test_stopped_notebooks_say_why(batch):
    assert "ran out of time" in batch["rows"]["attack_infinite_loop.ipynb"]["notes"]
    assert "killed the process that grades it" in batch["rows"]["attack_kills_the_grader.ipynb"]["notes"]
    assert "too many files" in batch["rows"]["attack_file_flood.ipynb"]["notes"]


def test_instructor_files_and_network_are_out_of_reach(batch):
    verdict = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / "attack_instructor_files.json")
                         .read_text())
    printed = " ".join(record.get("stdout", "") for record in verdict["outputs"].values())
    assert "DENIED" in printed and str(batch["course"]) in printed  # the attack ran
    assert "READ" not in printed and "WROTE" not in printed
    for path in (batch["course"]).rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".db", ".py"):
            assert b"pwned" not in path.read_bytes()[-100:], path
    network = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / "attack_network.json").read_text())
    assert "CONNECTED" not in json.dumps(network)
    assert not batch["connected"]


def test_no_process_is_left_behind(batch):
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "resnet-attack-leftover" not in listing


def _printed(batch, student):
    verdict = json.loads((batch["course"] / "grading" / "resnet18" / "verdicts" / f"{student}.json").read_text())
    return " ".join(record.get("stdout", "") for record in verdict["outputs"].values())


def test_a_fork_loop_is_capped(batch):
    forked, refused = (int(n) for n in _printed(batch, "attack_fork_loop").split("FORKED")[1].split()[::2])
    assert forked < LIMITS.processes and refused > 0  # the attack ran into the cap ...
    host = batch["host"]
    # ... and the host kept its free processes: two capped workers, the recorder and the tools it
    # runs, where the fork loop alone would have made 3,000.
    assert host.worst["processes"] - host.before["processes"] < 2 * LIMITS.processes + 100
    assert host.after["processes"] <= host.before["processes"] + 2


def test_a_disk_filler_is_capped(batch):
    printed = _printed(batch, "attack_disk_filler")
    written = {folder: int(mib) for folder, mib in (line.split()[1:3] for line in printed.splitlines()
                                                   if line.startswith("WROTE"))}
    assert written["/"] == written["/dev"] == 0
    cap = (LIMITS.disk_bytes + SHM_BYTES) >> 20
    assert 0 < sum(written.values()) <= cap  # it wrote until the private /tmp and /dev/shm were full
    # What the sandboxes wrote is memory: the host's Shmem (tmpfs and SysV shared memory), sampled
    # while the batch ran, grew by at most two workers' caps (where the filler, uncapped, writes 3 GiB).
    host = batch["host"]
    assert host.worst["shared_memory"] - host.before["shared_memory"] < 2 * (cap << 20) + (200 << 20)


def test_student_code_with_nbgraders_marker_text_gets_feedback(batch):
    row = batch["rows"]["hidden_marker.ipynb"]
    assert row["status"] == "graded" and _parts(row) == FULL and "feedback" not in row["notes"]
    page = (batch["course"] / "feedback" / "hidden_marker" / "resnet18" / "resnet18.html").read_text()
    assert "this is my own comment" in page and "MY_NOTE" in page  # the student's cell as written
    assert "END HIDDEN TESTS" not in page  # the test cells' hidden regions are still removed


BAD = {"empty.ipynb": "empty", "not_json.ipynb": "invalid JSON", "wrong_assignment.ipynb": "bottleneck"}
REPAIRED = ["nbformat3.ipynb", "Copy of stripped_metadata.ipynb", "deleted_tests.ipynb",
            "duplicated_tests.ipynb", "huge_output.ipynb"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_files_get_a_row_with_their_reason(batch, name):
    row = batch["rows"][name]
    assert row["status"] == "unusable" and row["score"] == ""
    assert BAD[name] in row["notes"]


@pytest.mark.parametrize("name", REPAIRED)
def test_repairable_files_are_repaired_and_graded_in_full(batch, name):
    row = batch["rows"][name]
    assert row["status"] == "graded"
    assert _parts(row) == FULL


def test_feedback_and_summary_are_written(batch):
    work = batch["course"] / "grading" / "resnet18"
    assert (work / "summary.png").stat().st_size > 1000
    rates = list(csv.DictReader(open(work / "pass_rates.csv")))
    assert [r["part"] for r in rates] == list(FULL)
    page = (batch["course"] / "feedback" / "relu_before_add" / "resnet18" / "resnet18.html").read_text()
    assert "add first, then ReLU" in page and "HIDDEN TESTS" not in page


def test_rerun_skips_unchanged_submissions(batch, monkeypatch):
    import time

    from autograder.grade import batch as batch_module
    from autograder.grade import intake

    def no_work(*args, **kwargs):
        raise AssertionError("an unchanged file was restored again, or the sandbox was started")
    monkeypatch.setattr(batch_module, "Pool", no_work)
    monkeypatch.setattr(intake, "restore_limited", no_work)   # refused files keep their reason too
    shutil.rmtree(batch["course"] / "feedback" / "attack_hard_exit")  # lost since: the rerun says so
    start = time.monotonic()
    rows = grade("resnet18", [str(batch["inbox"])], course_dir=batch["course"], jobs=2, progress=False,
                 limits=LIMITS)
    assert time.monotonic() - start < 30
    assert {Path(r["input"]).name: r["score"] for r in rows} == {n: r["score"] for n, r in batch["rows"].items()}
    notes = {Path(r["input"]).name: r["notes"] for r in rows}
    for name in ("deep_metadata.ipynb", "empty.ipynb", "wrong_assignment.ipynb", "bob.ipynb"):
        assert notes[name] == batch["rows"][name]["notes"], name
    assert "no feedback page" in notes["attack_hard_exit.ipynb"]
    assert not any("no feedback page" in note for name, note in notes.items() if name != "attack_hard_exit.ipynb")


def test_hostile_files_do_not_stop_the_batch_nor_change_the_controls(batch):
    rows = batch["rows"]
    assert rows["deep_metadata.ipynb"]["status"] == "unusable"
    assert "nested more than" in rows["deep_metadata.ipynb"]["notes"]
    assert _parts(rows["comma_tag.ipynb"]) == FULL and "tag holding a comma" in rows["comma_tag.ipynb"]["notes"]
    expected = json.loads((course.SAMPLES / "resnet18" / "expected_scores.json").read_text())
    for student, parts in expected.items():   # the controls
        assert _parts(rows[f"{student}.ipynb"]) == parts, student


def test_ids_from_file_names_cannot_be_stolen(batch):
    rows = batch["rows"]
    for name in ("bob.ipynb", "Copy of bob.ipynb"):
        row = rows[name]
        assert row["status"] == "error" and row["score"] == "", row
        assert "bob.ipynb" in row["notes"] and "Copy of bob.ipynb" in row["notes"] and "--roster" in row["notes"]
    unnamed = rows["resnet18.ipynb"]
    assert unnamed["status"] == "graded" and _parts(unnamed) == FULL and "roster" in unnamed["notes"]
    assert any("name no student" in m and "resnet18.ipynb" in m for m in batch["messages"])


def test_an_mxnet_error_shows_its_decisive_line_once(batch):
    page = (batch["course"] / "feedback" / "forgot_stride" / "resnet18" / "resnet18.html").read_text()
    summary = page.split('class="part-summary"', 1)[1].split("</table>", 1)[0]
    assert "operands could not be broadcast together with shapes" in summary
    assert "Traceback" not in summary and "most recent call last" not in page
    assert summary.count("could not be broadcast") == 1 and "the same error (see above)" in summary


def test_a_partly_failed_part_lists_what_passed_too(batch):
    page = (batch["course"] / "feedback" / "relu_before_add" / "resnet18" / "resnet18.html").read_text()
    scores = _parts(batch["rows"]["relu_before_add.ipynb"])
    assert 0 < scores["residual"] < FULL["residual"]
    row = page.split('class="part-summary"', 1)[1].split("</tr>")[1]
    assert "failed:" in row and "passed" in row



CHECK_PAGE = """<script>
(function () {
  var summary = document.querySelector("table.part-summary");
  var out = document.createElement("pre");
  out.id = "page-check";
  out.textContent = JSON.stringify({
    title: document.title, pwned: !!document.getElementById("pwned"),
    tables: document.querySelectorAll("table.part-summary").length,
    shown: !!summary && getComputedStyle(summary).display !== "none" && summary.offsetHeight > 0,
    rows: [].slice.call(summary ? summary.rows : [], 1).map(function (tr) {
      return [].map.call(tr.cells, function (td) { return td.innerText; }); }),
    scripts: document.scripts.length, iframes: document.querySelectorAll("iframe").length});
  document.body.appendChild(out);
})();
</script>"""


def test_a_hostile_notebooks_feedback_page_is_inert(batch, tmp_path):
    """In headless Chromium: no script of the student's runs, nothing loads from the loopback listener
    its cells point at, and the summary shown is the true one."""
    import html
    import re
    from http.server import BaseHTTPRequestHandler, HTTPServer

    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    if browser is None and not os.environ.get("CI"):
        pytest.skip("Chromium is needed (scripts/env.sh installs it as root)")
    page = (batch["course"] / "feedback" / "hostile_page" / "resnet18" / "resnet18.html").read_text()
    assert "PWNED" in page and live_tags(page, batch["port"]) == []
    requests = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", batch["port"]), Record)   # where the notebook's cells point
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        copy = tmp_path / "page.html"
        copy.write_text(page.replace("</body>", CHECK_PAGE + "</body>"))
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
                               "--window-size=1280,900", "--dump-dom", copy.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="page-check">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert "PWNED" not in seen["title"] and not seen["pwned"], seen
    assert requests == [], requests
    assert seen["iframes"] == 0 and seen["tables"] == 1 and seen["shown"], seen
    scores = _parts(batch["rows"]["hostile_page.ipynb"])
    maxima = course.max_scores("resnet18")
    assert [row[:2] for row in seen["rows"]] == [[p, f"{scores[p]:g} / {maxima[p]:g}"] for p in maxima]
    assert scores["residual"] == FULL["residual"] and sum(scores.values()) == FULL["residual"]
    assert "</table>" in seen["rows"][1][2]   # the message is shown as text, whole


def test_the_formgrader_shows_the_hostile_notebook_inert(batch):
    """The autograded notebook as nbgrader's formgrader renders it for the instructor: its exporter
    with this course's configuration and formgrader's own template (as formgrader.py makes it)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(batch["course"])).load_config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.template_file = "index.html.j2"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    notebook = batch["course"] / "autograded" / "hostile_page" / "resnet18" / "resnet18.ipynb"
    resources = {"assignment_id": "resnet18", "notebook_id": "resnet18", "submission_id": "x", "index": 0,
                 "total": 1, "base_url": "/", "student": "hostile_page", "last_name": "", "first_name": "",
                 "notebook_path": "autograded/hostile_page/resnet18/resnet18.ipynb"}
    page, _ = HTMLExporter(config=config).from_filename(str(notebook), resources=resources)
    assert "PWNED" in page   # the student's cells are there, as text
    assert live_tags(page, batch["port"]) == []


def live_tags(page, port):
    """The tags of ``page`` that would run the hostile notebook's script (all of which write "PWNED"),
    load from its ``port``, or hide the summary."""
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        inside = None

        def handle_starttag(self, tag, attrs):
            self.inside = tag
            for name, value in attrs:
                value = value or ""
                if (name.startswith("on") and "PWNED" in value or f"127.0.0.1:{port}" in value
                        or value.startswith("javascript:")):
                    found.append((tag, name, value))
            if tag == "iframe":
                found.append((tag, "", ""))

        def handle_data(self, data):
            if (self.inside == "script" and "PWNED" in data
                    or self.inside == "style" and "part-summary { display: none }" in data):
                found.append((self.inside, "", data))

        def handle_endtag(self, tag):
            self.inside = None

    Tags().feed(page)
    return found
