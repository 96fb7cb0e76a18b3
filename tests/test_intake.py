"""Intake: collecting received files (folders, zips, nbgrader trees) and restoring notebooks.

Every fixture is generated here from the release and the sample answers, so
the tests follow changes of the notebooks. One test runs real nbgrader on
three restored notebooks (slow, ~30 s).
"""
import copy
import csv
import json
import shutil
import stat
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import course  # noqa: E402
from autograder.grade.intake import Unusable, collect, intake, load_submission  # noqa: E402
from autograder.grade.intake import restore  # noqa: E402
from autograder.assign.samples import fill, read_answers  # noqa: E402

collect_mod = sys.modules["autograder.grade.intake.collect"]  # the module; the package exports the function
ASSIGNMENT = "resnet18"
RELEASE = nbformat.read(course.RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
SOURCES = {a: nbformat.read(course.source_notebook(a), as_version=4) for a in course.assignments()}


def answers(sample):
    return read_answers(course.SAMPLES / ASSIGNMENT / f"{sample}.py")


def correct():
    return fill(RELEASE, answers("correct_reference"))


def stripped(nb):
    """As Colab leaves a notebook whose cells were copied into a new one: no nbgrader metadata, new ids."""
    nb = copy.deepcopy(nb)
    for n, cell in enumerate(nb.cells):
        cell.metadata.pop("nbgrader", None)
        cell.metadata["id"] = cell.id = f"colab{n:04d}"
    nb.metadata = {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    return nb


def cell_index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.get("id") == grade_id)


def load(tmp_path, nb_or_bytes, name="sub.ipynb"):
    path = tmp_path / name
    if isinstance(nb_or_bytes, (bytes, str)):
        path.write_bytes(nb_or_bytes if isinstance(nb_or_bytes, bytes) else nb_or_bytes.encode())
    else:
        nbformat.write(nb_or_bytes, path)
    return load_submission(path, RELEASE, SOURCES[ASSIGNMENT], SOURCES)


def reason(tmp_path, data, name="sub.ipynb"):
    with pytest.raises(Unusable) as info:
        load(tmp_path, data, name)
    return info.value.reason


def solutions(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def skeleton(nb):
    """(id, nbgrader metadata, source) of the release's cells, solution sources left out."""
    return [(c.id, c.metadata.get("nbgrader"), None if c.metadata.get("nbgrader", {}).get("solution") else c.source)
            for c in nb.cells if c.metadata.get("nbgrader")]


# --- restore: reading -------------------------------------------------------------

def test_bad_files_give_their_reason(tmp_path):
    assert reason(tmp_path, b"") == "empty file"
    assert reason(tmp_path, b"  \n") == "empty file"
    assert reason(tmp_path, '{\n "cells": [\n  {"cell_type": "code",\n') == "not a notebook: invalid JSON (line 4)"
    assert reason(tmp_path, "[1, 2]") == "not a notebook: JSON without notebook cells"
    assert reason(tmp_path, '{"name": "x"}') == "not a notebook: JSON without notebook cells"
    assert reason(tmp_path, b"%PDF-1.4 ...") == "not a notebook: a PDF file"
    assert reason(tmp_path, b"PK\x03\x04...") == "not a notebook: a zip archive"
    assert reason(tmp_path, b"\xff\xfe\x00bad") == "not a notebook: not a text file"
    assert reason(tmp_path, '{"nbformat": 2, "worksheets": []}') == "not a notebook: nbformat 2 is too old"


def test_too_large_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(restore, "MAX_BYTES", 1000)
    assert reason(tmp_path, correct()).startswith("file too large")


def test_nbformat_3_is_converted(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nbformat.convert(stripped(correct()), 3), version=3))
    assert json.loads(path.read_text())["nbformat"] == 3
    nb, notes = load_submission(path, RELEASE, SOURCES[ASSIGNMENT], SOURCES)
    assert "converted from nbformat 3" in notes
    assert solutions(nb) == solutions(correct())
    assert skeleton(nb) == skeleton(RELEASE)


def test_huge_outputs_are_removed(tmp_path):
    nb = correct()
    big = nbformat.v4.new_output("stream", name="stdout", text="x" * (50 * 1024 ** 2))
    nb.cells[cell_index(nb, "code-04")].outputs = [big]
    small = nbformat.v4.new_output("stream", name="stdout", text="ok\n")
    nb.cells[cell_index(nb, "residual")].outputs = [small]
    restored, notes = load(tmp_path, nb)
    assert any(n.startswith("outputs removed") for n in notes)
    assert len(nbformat.writes(restored)) < 1024 ** 2
    assert all(not c.get("outputs") for c in restored.cells)
    # Small outputs are kept.
    nb.cells[cell_index(nb, "code-04")].outputs = []
    restored, notes = load(tmp_path, nb)
    assert notes == []
    assert restored.cells[cell_index(restored, "residual")].outputs == [small]


# --- restore: hostile files, under limits ---------------------------------------------

def _as_json(nb):
    return json.loads(nbformat.writes(nb))


def hostile_files(folder):
    """{file name: expected reason, or None for a file that must be graded}, written into ``folder``;
    correct notebooks sit among them as controls."""
    base = _as_json(correct())
    files = {}

    def write(name, data, expected):
        (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))
        files[name] = expected

    write("control_a.ipynb", base, None)
    # JupyterLab lets a student type a comma in a tag; nbformat refuses such a cell.
    write("comma_tag.ipynb", dict(base, cells=base["cells"] + [
        {"cell_type": "markdown", "id": "mine", "metadata": {"tags": ["todo,later"]}, "source": "my notes"}]), None)
    deep = '{"x": ' * 600 + "1" + "}" * 600
    text = json.dumps(base)
    write("deep_metadata.ipynb", text.replace('"metadata": {', f'"metadata": {{"deep": {deep}, ', 1),
          "nested more than")
    locked = next(c for c in base["cells"] if c["cell_type"] == "markdown" and len("".join(c["source"])) > 50)
    write("pasted_20000.ipynb", dict(base, cells=base["cells"] + [dict(locked, id=f"p{i}") for i in range(20000)]),
          "cells (limit")
    write("pasted_4900.ipynb", dict(base, cells=base["cells"] + [dict(locked, id=f"p{i}") for i in range(4900)]),
          None)
    write("huge_cell.ipynb", dict(base, cells=base["cells"] + [
        {"cell_type": "code", "id": "big", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "x = [" + "1, " * 700_000 + "]"}]), "M characters")
    write("control_b.ipynb", base, None)
    return files


def test_hostile_files_are_unusable_rows_and_the_others_are_graded(tmp_path):
    import time
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = hostile_files(inbox)
    start = time.monotonic()
    results = {Path(r.entry.source).name: r for r in intake(inbox, ASSIGNMENT, workdir=tmp_path / "w")}
    assert time.monotonic() - start < 60  # 20,000 pasted cells took 25 s alone before
    assert sorted(results) == sorted(files)
    for name, expected in files.items():
        if expected is None:
            assert results[name].reason is None and results[name].notebook is not None, (name, results[name].reason)
        else:
            assert expected in results[name].reason, (name, results[name].reason)
    assert solutions(results["comma_tag.ipynb"].notebook) == solutions(correct())
    assert any("tag holding a comma" in n for n in results["comma_tag.ipynb"].notes)
    for name in ("control_a.ipynb", "control_b.ipynb", "pasted_4900.ipynb"):
        assert solutions(results[name].notebook) == solutions(correct()) and results[name].notes == [], name


def test_restoring_runs_under_a_time_and_memory_limit(tmp_path):
    from autograder.grade.intake import Limits, restore_limited
    nb = correct()
    nb.cells[cell_index(nb, "code-04")].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="x" * (40 << 20))]
    path = tmp_path / "big.ipynb"
    nbformat.write(nb, path)
    release, sources = course.RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", {
        a: course.source_notebook(a) for a in course.assignments()}
    restored, notes = restore_limited(path, release, sources, ASSIGNMENT)
    assert solutions(restored) == solutions(correct()) and any(n.startswith("outputs removed") for n in notes)
    with pytest.raises(Unusable, match="needs more than 100 MiB of memory"):
        restore_limited(path, release, sources, ASSIGNMENT, Limits(memory_bytes=100 << 20))
    with pytest.raises(Unusable, match="took longer than 0.05 s"):
        restore_limited(path, release, sources, ASSIGNMENT, Limits(wall_seconds=0.05))


def test_a_lost_restoring_server_loses_one_file_for_this_run_only(tmp_path):
    """The children that restore files are forked from one server (limited.py). Killed while a
    file is being restored, it takes that child with it: the file gets a reason that is not
    remembered as refused (a later run tries it again), and the next file gets a new server."""
    import threading
    import time

    from autograder.grade.intake import LimitExceeded, restore_limited
    from autograder.grade.intake import limited
    release, sources = course.RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", {
        a: course.source_notebook(a) for a in course.assignments()}
    small = tmp_path / "small.ipynb"
    nbformat.write(correct(), small)
    assert solutions(restore_limited(small, release, sources, ASSIGNMENT)[0]) == solutions(correct())
    slow = tmp_path / "slow.ipynb"   # about 4,400 cells pasted from the release: seconds of matching
    nb = correct()
    nb.cells = [copy.deepcopy(cell) for _ in range(60) for cell in nb.cells]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"pasted-{index}"
    nbformat.write(nb, slow)
    server = limited._server._process
    outcome = {}

    def restoring():
        try:
            outcome["notebook"] = restore_limited(slow, release, sources, ASSIGNMENT)[0]
        except Unusable as error:
            outcome["error"] = error

    thread = threading.Thread(target=restoring)
    thread.start()
    time.sleep(0.5)
    children = [int(p) for p in (Path("/proc") / str(server.pid) / "task" / str(server.pid) / "children")
                .read_text().split()]
    server.kill()
    thread.join(60)
    assert not thread.is_alive()
    assert children, "the slow file was restored in under half a second: make it slower"
    assert isinstance(outcome.get("error"), LimitExceeded), outcome   # its child died with the server
    assert "grade again" in outcome["error"].reason
    time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
                   for pid in children)
    assert solutions(restore_limited(small, release, sources, ASSIGNMENT)[0]) == solutions(correct())
    assert limited._server._process.pid != server.pid


# --- restore: rebuilding ------------------------------------------------------------

def test_an_intact_submission_is_unchanged(tmp_path):
    nb, notes = load(tmp_path, correct())
    assert notes == []
    assert [(c.id, c.metadata, c.source) for c in nb.cells] == [(c.id, c.metadata, c.source) for c in correct().cells]
    nbformat.validate(nb)


def test_stripped_metadata_is_restored_exactly(tmp_path):
    nb, notes = load(tmp_path, stripped(correct()))
    assert [(c.id, c.metadata, c.source) for c in nb.cells] == [(c.id, c.metadata, c.source) for c in correct().cells]
    assert nb.metadata == RELEASE.metadata
    assert notes == [f"restored nbgrader metadata of {len(RELEASE.cells)} cells"]


def messy(nb):
    """Stripped, a test deleted, a test duplicated, a test edited, cells moved, helper cells added."""
    nb = stripped(nb)
    cells = nb.cells
    edited = cells[cell_index(RELEASE, "resnet18_visible")]
    edited.source = "check.resnet18_demo(resnet18)  # ok"
    dup = copy.deepcopy(cells[cell_index(RELEASE, "stem_visible")])
    stem = cells[cell_index(RELEASE, "stem")]
    del cells[cell_index(RELEASE, "residual_visible")]
    cells.insert(cell_index(RELEASE, "resnet_block"), dup)
    # the block's demo cell above its markdown
    i = next(n for n, c in enumerate(cells) if c.source.startswith("blk = Residual(3)"))
    cells[i - 1], cells[i] = cells[i], cells[i - 1]
    j = next(n for n, c in enumerate(cells) if c is stem)
    cells.insert(j, nbformat.v4.new_code_cell("def conv_bn(channels):\n    return nn.Conv2D(channels, 3)"))
    cells.insert(j, nbformat.v4.new_markdown_cell("My notes on the stem"))
    cells.append(nbformat.v4.new_code_cell("print('done')"))
    cells.insert(3, nbformat.v4.new_code_cell(""))
    for n, c in enumerate(cells):
        c.id = f"m{n}"
    return nb


def test_messy_notebook_is_rebuilt_on_the_release(tmp_path):
    nb, notes = load(tmp_path, messy(correct()))
    assert skeleton(nb) == skeleton(RELEASE)   # every locked and test cell as released, in order
    assert solutions(nb) == solutions(correct())
    extras = [c for c in nb.cells if "nbgrader" not in c.metadata]
    assert [c.source for c in extras] == ["My notes on the stem",
                                          "def conv_bn(channels):\n    return nn.Conv2D(channels, 3)",
                                          "print('done')"]
    # helper cells keep their place: before the stem solution, and at the end
    ids = [c.id for c in nb.cells]
    assert ids.index(extras[1].id) == ids.index("stem") - 1
    assert ids[-1] == extras[2].id
    assert "graded cell residual_visible was missing: restored from the release" in notes
    assert "test cell stem_visible appeared twice: the copy was ignored" in notes
    assert any("resnet18_visible" in n and "release's version" in n for n in notes)
    assert any(n.startswith("restored nbgrader metadata of") for n in notes)
    nbformat.validate(nb)


def test_missing_solution_is_graded_as_blank(tmp_path):
    nb = stripped(correct())
    del nb.cells[cell_index(RELEASE, "resnet_block")]
    restored, notes = load(tmp_path, nb)
    assert "solution cell resnet_block not found: graded as blank" in notes
    assert solutions(restored)["resnet_block"] == solutions(RELEASE)["resnet_block"]
    assert skeleton(restored) == skeleton(RELEASE)


def test_solutions_found_by_name_anywhere_and_by_position(tmp_path):
    nb = stripped(correct())
    residual = nb.cells.pop(cell_index(RELEASE, "residual"))
    residual.source = "import math\n\n" + residual.source + "\n\nx = (\n"   # a syntax error: regex fallback
    nb.cells.append(residual)                       # moved to the end of the notebook
    stem = nb.cells[cell_index(RELEASE, "stem") - 1]
    assert stem.source.startswith("def make_stem")
    stem.source = "make_stem = lambda: make_my_stem()"   # no def: found by the assignment's name
    pls = nb.cells[cell_index(RELEASE, "print_layer_shapes") - 1]
    pls.source = "for layer in []:\n    pass"            # defines nothing: found by its position
    restored, notes = load(tmp_path, nb)
    got = solutions(restored)
    assert got["residual"] == residual.source
    assert got["stem"] == stem.source
    assert got["print_layer_shapes"] == pls.source
    assert "solution cell residual was out of place: it runs at its place in the release" in notes
    assert skeleton(restored) == skeleton(RELEASE)


def test_duplicated_solution_cell_with_metadata_last_answer_wins(tmp_path):
    nb = correct()
    i = cell_index(nb, "stem")
    first = copy.deepcopy(nb.cells[i])
    first.source = "def make_stem():\n    return None"
    first.id = "first"
    stub = copy.deepcopy(RELEASE.cells[i])
    stub.id = "stubcopy"
    nb.cells[i + 1:i + 1] = [stub]
    nb.cells.insert(i, first)
    restored, notes = load(tmp_path, nb)
    assert solutions(restored)["stem"] == solutions(correct())["stem"]
    assert any(n.startswith("solution cell stem appeared 3 times") for n in notes)
    plain = [c.source for c in restored.cells if "nbgrader" not in c.metadata]
    assert plain == [first.source]          # the other answer still runs; the stub copy is dropped


def test_untouched_stubs_without_metadata_are_a_blank_submission(tmp_path):
    nb, notes = load(tmp_path, stripped(RELEASE))
    assert solutions(nb) == solutions(RELEASE)
    assert not any("not found" in n for n in notes)
    assert [c.id for c in nb.cells] == [c.id for c in RELEASE.cells]


def test_wrong_assignment_and_unrelated_notebooks_are_refused(tmp_path):
    if "bottleneck" in SOURCES:
        other = stripped(SOURCES["bottleneck"])
        assert reason(tmp_path, other) == "this is the bottleneck notebook, not resnet18"
    unrelated = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My homework"),
                                                nbformat.v4.new_code_cell("import numpy as np\nprint(np.ones(3))")])
    assert reason(tmp_path, unrelated) == "no cell of the resnet18 notebook found"
    # Only the student's answers, pasted into a fresh notebook: still this assignment.
    only = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code.rstrip("\n"))
                                           for code in answers("correct_reference").values()])
    nb, notes = load(tmp_path, only)
    assert solutions(nb) == solutions(correct())
    assert skeleton(nb) == skeleton(RELEASE)


# --- collect ----------------------------------------------------------------------------

NB_BYTES = nbformat.writes(correct()).encode()


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    return path


def by_source(entries):
    return {e.source: e for e in entries}


def test_folder_of_colab_downloads(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / ".ipynb_checkpoints").mkdir(parents=True)
    (inbox / "jane").mkdir()
    for name in ["resnet18.ipynb", "Copy of resnet18.ipynb", "resnet18 (1).ipynb", "jane_doe_resnet18.ipynb",
                 ".ipynb_checkpoints/resnet18-checkpoint.ipynb", "jane/resnet18.ipynb", "José Pérez - ResNet18.ipynb"]:
        (inbox / name).write_bytes(NB_BYTES)
    (inbox / ".DS_Store").write_bytes(b"junk")
    (inbox / "Thumbs.db").write_bytes(b"junk")
    (inbox / "report.pdf").write_bytes(b"%PDF-")
    (inbox / "link.ipynb").symlink_to(inbox / "resnet18.ipynb")
    entries = collect(inbox, ASSIGNMENT, workdir=tmp_path / "work")
    ids = {e.source.split("inbox/")[1]: e.student_id for e in entries}
    assert ids == {"resnet18.ipynb": "resnet18", "Copy of resnet18.ipynb": "copy_of_resnet18",
                   "resnet18 (1).ipynb": "resnet18_1", "jane_doe_resnet18.ipynb": "jane_doe",
                   "jane/resnet18.ipynb": "jane", "José Pérez - ResNet18.ipynb": "jose_perez",
                   "report.pdf": "report", "link.ipynb": "link"}
    needs_roster = {e.source.split("inbox/")[1] for e in entries if collect_mod.NEEDS_ROSTER in e.notes}
    assert needs_roster == {"resnet18.ipynb", "Copy of resnet18.ipynb", "resnet18 (1).ipynb"}
    e = by_source(entries)
    assert e[f"{inbox}/report.pdf"].reason == "not a notebook file (.pdf): submit the .ipynb file"
    assert e[f"{inbox}/link.ipynb"].reason == "a symbolic link: not followed"
    good = e[f"{inbox}/jane_doe_resnet18.ipynb"]
    assert good.reason is None and good.kind == "file"
    assert good.path.read_bytes() == NB_BYTES and str(good.path).startswith(str(tmp_path / "work"))
    import hashlib
    assert good.sha256 == hashlib.sha256(NB_BYTES).hexdigest()


def test_single_file_and_missing_input(tmp_path):
    f = tmp_path / "Copy of jane_resnet18 (2).ipynb"
    f.write_bytes(NB_BYTES)
    [entry] = collect(f, ASSIGNMENT, workdir=tmp_path / "work")
    assert (entry.source, entry.student_id, entry.reason) == (str(f), "jane", None)
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "nope.zip", ASSIGNMENT, workdir=tmp_path / "work")


def test_canvas_zip(tmp_path):
    z = make_zip(tmp_path / "upload.zip", {
        "doejane_12345_67890_resnet18.ipynb": NB_BYTES,
        "smithjohn_LATE_22222_33333_resnet18-1.ipynb": NB_BYTES,
        "doejane_12345_67891_notes.pdf": b"%PDF-",
        "doejane_12345_67892_resnet18-2.ipynb": NB_BYTES,
        "__MACOSX/._doejane_12345_67890_resnet18.ipynb": b"junk",
        ".DS_Store": b"junk",
    })
    entries = collect(z, ASSIGNMENT, workdir=tmp_path / "work")
    got = {e.source: (e.student_id, e.kind, e.late, e.reason) for e in entries}
    # Two notebooks of doejane: neither is picked; both are errors naming the two files.
    both = (f"ambiguous: 2 files give the student id doejane ({z}!doejane_12345_67890_resnet18.ipynb, "
            f"{z}!doejane_12345_67892_resnet18-2.ipynb): grade with a roster (--roster) that names each "
            "file's student")
    assert got == {
        f"{z}!doejane_12345_67890_resnet18.ipynb": ("doejane", "canvas", False, both),
        f"{z}!smithjohn_LATE_22222_33333_resnet18-1.ipynb": ("smithjohn", "canvas", True, None),
        f"{z}!doejane_12345_67891_notes.pdf": ("doejane_3", "canvas", False,
                                               "not a notebook file (.pdf): submit the .ipynb file"),
        f"{z}!doejane_12345_67892_resnet18-2.ipynb": ("doejane_2", "canvas", False, both),
    }
    assert {e.status for e in entries if e.reason == both} == {"error"}


def test_moodle_zip_and_roster(tmp_path):
    z = make_zip(tmp_path / "moodle.zip", {
        "Jane Doe_12345_assignsubmission_file_/resnet18.ipynb": NB_BYTES,
        "José Pérez_23456_assignsubmission_file_/Copy of resnet18.ipynb": NB_BYTES,
        "Ann Lee_34567_assignsubmission_onlinetext_/onlinetext.html": b"<p>hi</p>",
    })
    entries = collect(z, ASSIGNMENT, workdir=tmp_path / "w1")
    assert [(e.student_id, e.kind, e.reason is None) for e in entries] == [   # in the zip's name order
        ("34567", "moodle", False), ("12345", "moodle", True), ("23456", "moodle", True)]
    roster = tmp_path / "roster.csv"
    with open(roster, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "match", "file"])
        w.writerow(["s001", "jane doe", ""])
        w.writerow(["s002", "JOSÉ", ""])
        w.writerow(["s002x", "josé pérez_2", ""])     # longer match wins
    entries = collect(z, ASSIGNMENT, roster=roster, workdir=tmp_path / "w2")
    assert [e.student_id for e in entries] == ["34567", "s001", "s002x"]
    assert entries[0].notes == ["not on the roster: id from the file name"]


def test_roster_file_column_and_invalid_roster(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "resnet18.ipynb").write_bytes(NB_BYTES)
    (inbox / "resnet18 (1).ipynb").write_bytes(NB_BYTES)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,match,file\nalice,,resnet18.ipynb\nbob,resnet18,\n")
    entries = collect(inbox, ASSIGNMENT, roster=roster, workdir=tmp_path / "w")
    ids = {Path(e.source).name: e.student_id for e in entries}
    assert ids == {"resnet18.ipynb": "alice", "resnet18 (1).ipynb": "bob"}
    roster.write_text("student_id,match\nbad id!,x\n")
    with pytest.raises(ValueError, match="not a valid student id"):
        collect(inbox, ASSIGNMENT, roster=roster, workdir=tmp_path / "w")


def test_nbgrader_tree_folder_and_zip(tmp_path):
    root = tmp_path / "course"
    for student, assignment in [("alice", "resnet18"), ("bob", "resnet18"), ("bob", "bottleneck")]:
        d = root / "submitted" / student / assignment
        d.mkdir(parents=True)
        (d / f"{assignment}.ipynb").write_bytes(NB_BYTES)
        (d / "timestamp.txt").write_text("2024-01-01 00:00:00")
    (root / "source" / "resnet18").mkdir(parents=True)
    (root / "source" / "resnet18" / "resnet18.ipynb").write_bytes(NB_BYTES)
    for given in (root, root / "submitted"):
        entries = collect(given, ASSIGNMENT, workdir=tmp_path / "w")
        assert [(e.student_id, e.kind) for e in entries] == [("alice", "nbgrader"), ("bob", "nbgrader")]
    z = shutil.make_archive(str(tmp_path / "tree"), "zip", root)
    entries = collect(z, ASSIGNMENT, workdir=tmp_path / "w2")
    assert [(e.student_id, e.source) for e in entries] == [
        ("alice", f"{z}!submitted/alice/resnet18/resnet18.ipynb"), ("bob", f"{z}!submitted/bob/resnet18/resnet18.ipynb")]


def test_zip_safety(tmp_path, monkeypatch):
    link = zipfile.ZipInfo("link.ipynb")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "upload.zip", {
        "../evil.ipynb": NB_BYTES,
        "/abs/evil2.ipynb": NB_BYTES,
        "a/../../evil3.ipynb": NB_BYTES,
        "link.ipynb": link,
        "inner.zip": b"PK",
        "big.ipynb": NB_BYTES + b" " * 5000,
        "ok.ipynb": NB_BYTES,
    })
    monkeypatch.setattr(collect_mod, "MAX_FILE_BYTES", len(NB_BYTES) + 100)
    work = tmp_path / "deep" / "work"
    entries = collect(z, ASSIGNMENT, workdir=work)
    reasons = {e.source.split("!")[1]: e.reason for e in entries}
    assert reasons["../evil.ipynb"].startswith("unsafe path in the zip")
    assert reasons["/abs/evil2.ipynb"].startswith("unsafe path in the zip")
    assert reasons["a/../../evil3.ipynb"].startswith("unsafe path in the zip")
    assert reasons["link.ipynb"] == "a symbolic link in the zip: not followed"
    assert reasons["inner.zip"].startswith("a zip inside the input")
    assert reasons["big.ipynb"].startswith("larger than")
    assert reasons["ok.ipynb"] is None
    assert len(entries) == 7
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*") if work not in p.parents)
    assert all(e.path is None or work in e.path.parents for e in entries)
    # The total of a zip is bounded too.
    monkeypatch.setattr(collect_mod, "MAX_FILE_BYTES", 10 ** 9)
    monkeypatch.setattr(collect_mod, "MAX_ZIP_BYTES", 2 * len(NB_BYTES) + 10)
    z2 = make_zip(tmp_path / "many.zip", {f"s{n}_resnet18.ipynb": NB_BYTES for n in range(4)})
    reasons = [e.reason for e in collect(z2, ASSIGNMENT, workdir=tmp_path / "w3")]
    assert reasons[:2] == [None, None] and all(r and "more than" in r for r in reasons[2:])


def test_corrupt_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    [entry] = collect(bad, ASSIGNMENT, workdir=tmp_path / "w")
    assert entry.reason.startswith("not a valid zip file")


def test_intake_end_to_end(tmp_path):
    z = make_zip(tmp_path / "upload.zip", {
        "doejane_1_2_resnet18.ipynb": nbformat.writes(stripped(correct())),
        "smithjohn_3_4_resnet18.ipynb": b"",
        "leeann_5_6_resnet18.ipynb": nbformat.writes(SOURCES.get("bottleneck", correct())),
    })
    results = {r.student_id: r for r in intake(z, ASSIGNMENT, workdir=tmp_path / "w")}
    assert results["doejane"].reason is None and results["doejane"].notebook is not None
    assert results["smithjohn"].reason == "empty file"
    if "bottleneck" in SOURCES:
        assert results["leeann"].reason == "this is the bottleneck notebook, not resnet18"


# --- real nbgrader ----------------------------------------------------------------------

def test_restored_notebooks_grade_with_real_nbgrader(tmp_path):
    """Stripped correct -> 100, stripped blank -> 0, messy correct -> 100, by nbgrader autograde."""
    from nbgrader.api import Gradebook

    from autograder.grade.nbgrader_cli import NbgraderError, nbgrader

    course_dir = tmp_path / "course"
    (course_dir / "source").mkdir(parents=True)
    shutil.copytree(course.SOURCE / ASSIGNMENT, course_dir / "source" / ASSIGNMENT)
    shutil.copy(course.ROOT / "nbgrader_config.py", course_dir)
    nbgrader(course_dir, "generate_assignment", ASSIGNMENT, "--force")
    release = nbformat.read(course_dir / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    received = {"full": stripped(fill(release, answers("correct_reference"))),
                "blank": stripped(release),
                "messy": messy(fill(release, answers("correct_styled")))}
    for student, nb in received.items():
        restored, _ = load(tmp_path, nb, f"{student}.ipynb")
        target = course_dir / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(restored, target)
        nbgrader(course_dir, "db", "student", "add", student)
    # Hostile files among them, as nbgrader's own front door (RestoreSubmission) receives them.
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    expected = hostile_files(hostile)
    for name in ("deep_metadata.ipynb", "huge_cell.ipynb", "comma_tag.ipynb"):
        student = name.split(".")[0]
        target = course_dir / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(hostile / name, target)
        nbgrader(course_dir, "db", "student", "add", student)
    with pytest.raises(NbgraderError) as refused:   # nbgrader exits with an error when it refused one
        nbgrader(course_dir, "autograde", ASSIGNMENT, "--force")
    log = str(refused.value)
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(ASSIGNMENT, s).score for s in [*received, "comma_tag"]}
    assert scores == {"full": 100, "blank": 0, "messy": 100, "comma_tag": 100}
    # Each refusal is one line; the deep one nbgrader's own reader cannot read (before the course's steps).
    refusals = [line for line in log.splitlines() if "refused: " in line]
    assert len(refusals) == 2, log
    assert any(expected["huge_cell.ipynb"] in line and "huge_cell" in line for line in refusals), refusals
    assert any("RecursionError" in line for line in refusals), refusals
    assert "Traceback" not in log and "has changed" not in log, log


def test_ambiguous_roster_matches_are_errors_and_missing_students_are_listed(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("ann_lee.ipynb", "ann_leeds.ipynb", "max kim.ipynb", "notes_ann_lee.pdf"):
        (inbox / name).write_bytes(NB_BYTES)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,match\ns1,ann_lee\ns2,max\ns3,kim\ns4,zoe\n")
    entries = collect(inbox, ASSIGNMENT, roster=roster, workdir=tmp_path / "w")
    by_name = {Path(e.source).name: e for e in entries}
    # "ann_lee" fits two notebooks: neither is given to s1, and the reason names both files.
    for name in ("ann_lee.ipynb", "ann_leeds.ipynb"):
        assert by_name[name].status == "error"
        assert "several files" in by_name[name].reason
        assert "ann_lee.ipynb" in by_name[name].reason and "ann_leeds.ipynb" in by_name[name].reason
    # "max kim" fits s2 and s3 equally well.
    assert by_name["max kim.ipynb"].status == "error"
    assert "s2, s3 fit this file equally well" in by_name["max kim.ipynb"].reason
    assert "not a notebook" in by_name["notes_ann_lee.pdf"].reason  # its own reason, not an ambiguity
    assert collect_mod.roster_missing(collect_mod.read_roster(roster), entries) == ["s2", "s3", "s4"]


def test_canvas_gradebook_export_is_a_roster(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "doejane_111_9001_resnet18.ipynb").write_bytes(NB_BYTES)
    (inbox / "Jane Doe resnet18.ipynb").write_bytes(NB_BYTES)
    (inbox / "kimmax_333_9003_resnet18.ipynb").write_bytes(NB_BYTES)
    roster = tmp_path / "export.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section,resnet18 (5501)\n'
                      '    Points Possible,,,,,100\n'
                      '"Doe, Jane",111,S111,jane.doe@uni.example,A,\n'
                      '"Kim, Max",333,S333,,B,\n'
                      '"Roe, Rick",444,,,B,\n')
    rows = collect_mod.read_roster(roster)
    assert [(r["student_id"], r["canvas_id"]) for r in rows] == [("jane_doe", "111"), ("S333", "333"),
                                                                 ("canvas_444", "444")]
    entries = collect(inbox, ASSIGNMENT, roster=roster, workdir=tmp_path / "w")
    assert {Path(e.source).name: e.student_id for e in entries} == {
        "doejane_111_9001_resnet18.ipynb": "jane_doe", "Jane Doe resnet18.ipynb": "jane_doe_2",  # the roster's id first
        "kimmax_333_9003_resnet18.ipynb": "S333"}
