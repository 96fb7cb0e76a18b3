"""Is this notebook still gradable? ``selfcheck.check_notebook("resnet18")``.

nbgrader finds a student's answers and the tests by the grading metadata of
the cells (``metadata.nbgrader``: grade id, graded or not, points). Editors
lose it easily: a cell deleted and typed again, or copied and pasted, has
none; a duplicated cell has it twice, and nbgrader then keeps only the last
copy. The last cell of every release notebook calls :func:`check_notebook`,
which compares the notebook with the list of the release's nbgrader cells
shipped in this package (``gradable_cells/<assignment>.json``, written by
:func:`write_gradable_cells` when the course is built) and prints exactly what
to fix.

Which notebook: the kernel does not know its own file everywhere. On Colab the
notebook is read live from the browser (``google.colab._message``), so it is
what *File > Download* will give. Elsewhere it is the ``path`` given, else the
file Jupyter or VS Code says the kernel belongs to, else ``<assignment>.ipynb``
in the working folder, read from disk (so save first).

This module needs only the standard library.
"""
import glob
import hashlib
import json
import os
import re
import sys
from pathlib import Path

GRADABLE_CELLS = Path(__file__).resolve().parent / "gradable_cells"
PLACEHOLDER = "raise NotImplementedError"
DEFINITION = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.M)


# --- what the release holds (made at build time) ------------------------------------------

def _text(source):
    return "".join(source) if isinstance(source, list) else (source or "")


def _normalise(source):
    return "\n".join(line.rstrip() for line in _text(source).strip().splitlines())


def _digest(source):
    return hashlib.sha1(_normalise(source).encode()).hexdigest()


def _first_line(source, width=60):
    for line in _text(source).splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= width else line[:width - 3] + "..."
    return ""


def _kind(meta):
    if meta.get("solution"):
        return "answer"
    if meta.get("grade"):
        return "test"
    return "locked"


def gradable_cells(release_nb):
    """The release notebook's nbgrader cells, in order, as plain data."""
    cells = []
    for cell in release_nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta or not meta.get("grade_id"):
            continue
        entry = {
            "grade_id": meta["grade_id"],
            "cell_type": cell["cell_type"],
            "kind": _kind(meta),
            "grade": bool(meta.get("grade")),
            "solution": bool(meta.get("solution")),
            "locked": bool(meta.get("locked")),
            "sha1": _digest(cell["source"]),
            "first_line": _first_line(cell["source"]),
        }
        if meta.get("grade"):
            entry["points"] = meta.get("points", 0)
        if meta.get("checksum"):
            entry["checksum"] = meta["checksum"]
        if entry["kind"] == "answer":
            entry["defines"] = DEFINITION.findall(_text(cell["source"]))
        cells.append(entry)
    return cells


def write_gradable_cells(release_notebook, assignment=None, folder=GRADABLE_CELLS):
    """Write ``<folder>/<assignment>.json`` from a release notebook; return its path.

    Call it after ``nbgrader generate_assignment``, on the release notebook.
    """
    release_notebook = Path(release_notebook)
    assignment = assignment or release_notebook.stem
    nb = json.loads(release_notebook.read_text())
    out = Path(folder) / f"{assignment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"assignment": assignment, "cells": gradable_cells(nb)},
                              indent=1, sort_keys=True) + "\n")
    return out


def load_expected(assignment, folder=None):
    """The release's nbgrader cells of ``assignment`` as shipped in the package."""
    if folder is None:
        try:
            from importlib import resources
            text = (resources.files("autograder.student") / "gradable_cells" / f"{assignment}.json").read_text()
            return json.loads(text)["cells"]
        except (FileNotFoundError, ModuleNotFoundError, OSError):
            folder = GRADABLE_CELLS
    return json.loads((Path(folder) / f"{assignment}.json").read_text())["cells"]


# --- comparing a notebook with it ------------------------------------------------------------------

def _describe(entry):
    what = {"answer": "your answer cell", "test": "the graded test cell", "locked": "the cell"}[entry["kind"]]
    text = f"{what} '{entry['grade_id']}'"
    if entry["kind"] == "test":
        text += f" ({entry.get('points', 0):g} points)"
    if entry["first_line"]:
        text += f" (it starts `{entry['first_line']}`)"
    return text


def _cap(text):
    return text[:1].upper() + text[1:]


def _matches_without_metadata(entry, cell):
    if cell.get("cell_type") != entry["cell_type"]:
        return False
    if _digest(cell.get("source", "")) == entry["sha1"]:
        return True
    if entry["kind"] == "answer" and entry.get("defines"):
        defined = set(DEFINITION.findall(_text(cell.get("source", ""))))
        return bool(defined & set(entry["defines"]))
    return False


FRESH_COPY = "take a fresh copy of the notebook and move your answers into it (see below)"


def _numbers(indices):
    """'cell 4' or 'cells 4, 9': 1-based, as a notebook's cells are counted."""
    return ("cell " if len(indices) == 1 else "cells ") + ", ".join(str(i + 1) for i in indices)


def _lost_metadata(stripped, whole):
    """The one problem that stands for every graded or answer cell found only by its content."""
    if whole:
        return ("This notebook has lost its grading metadata, the hidden marks by which nbgrader finds your "
                "answers and its tests (it happens when the cells are copied into another notebook, or when an "
                f"editor that drops cell metadata saves the file); do this: {FRESH_COPY}.")
    named = ", ".join(f"{_numbers([index])} ('{entry['grade_id']}')" for index, entry in stripped)
    many = len(stripped) > 1
    return (f"{len(stripped)} graded or answer cell{'s' if many else ''} ha{'ve' if many else 's'} lost "
            f"{'their' if many else 'its'} grading metadata, the hidden marks by which nbgrader finds "
            f"{'them' if many else 'it'}: {named} (it happens when a cell is cut and pasted, or deleted and "
            f"typed again); do this: {FRESH_COPY}.")


def compare(nb, expected):
    """(problems, notes): what must be fixed for grading, and what is worth knowing.

    ``nb`` is a notebook as a dict (nbformat JSON); ``expected`` the list from
    :func:`load_expected`. Only graded and answer cells can be problems: the
    grader takes every other given cell (text, imports, demos, setup, this
    check) from the release, so whether one of those was deleted or lost its
    metadata does not matter and is not mentioned. Cells that lost their
    metadata but are recognisable by their content are one problem, said once;
    then come the graded and answer cells that are really missing, duplicated
    or whose grading metadata was changed.
    """
    problems, notes = [], []
    by_id = {}
    bare = []  # indices of cells without nbgrader metadata
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        if meta.get("grade_id"):
            by_id.setdefault(meta["grade_id"], []).append(index)
        else:
            bare.append(index)
    cells = nb.get("cells", [])
    known = {entry["grade_id"] for entry in expected}
    graded = [entry for entry in expected if entry["kind"] != "locked"]
    stripped, claimed = [], set()

    for entry in expected:
        found = by_id.get(entry["grade_id"], [])
        if entry["kind"] != "locked" and len(found) > 1:
            problems.append(
                f"{_cap(_describe(entry))} is duplicated: it appears {len(found)} times "
                f"({_numbers(found)} of the notebook). nbgrader grades only the last copy. "
                "Fix: delete the extra copies, keeping one, with your work in it.")
        if found:
            cell = cells[found[-1]]
            meta = cell["metadata"]["nbgrader"]
            changed = [key for key in ("grade", "solution", "locked") if bool(meta.get(key)) != entry[key]]
            if entry["grade"] and meta.get("grade") and float(meta.get("points", 0)) != float(entry.get("points", 0)):
                changed.append("points")
            if cell.get("cell_type") != entry["cell_type"]:
                changed.append("cell type")
            if changed and entry["kind"] != "locked":
                problems.append(f"The grading metadata of {_describe(entry)} was changed ({', '.join(changed)}). "
                                f"Fix: {FRESH_COPY}.")
            elif entry["kind"] != "answer" and entry["cell_type"] == "code" and \
                    _digest(cell.get("source", "")) != entry["sha1"]:
                notes.append(f"You edited {_describe(entry)}; grading restores the original, "
                             "so your change will have no effect.")
            elif entry["kind"] == "answer" and PLACEHOLDER in _text(cell.get("source", "")):
                notes.append(f"{_cap(_describe(entry))} still holds "
                             "`raise NotImplementedError()`: not answered yet.")
            continue
        if entry["kind"] == "locked":
            continue  # the grader uses the release's copy: deleted or stripped, nothing to fix
        # Not found by its metadata: stripped (the cell is there, recognisable by its content) or missing.
        match = next((i for i in bare if i not in claimed and _matches_without_metadata(entry, cells[i])), None)
        if match is not None:
            claimed.add(match)
            stripped.append((match, entry))
        else:
            problems.append(f"{_cap(_describe(entry))} is missing (deleted?). Fix: {FRESH_COPY}.")

    if stripped:
        whole = not any(by_id.get(entry["grade_id"]) for entry in graded)
        problems.insert(0, _lost_metadata(sorted(stripped, key=lambda pair: pair[0]), whole))
    for grade_id, found in by_id.items():
        if grade_id not in known:
            problems.append(
                f"{_cap(_numbers(found))} carr{'ies' if len(found) == 1 else 'y'} the grading id '{grade_id}', "
                "which is not part of this assignment (copied from another notebook?). "
                "Fix: delete it, or move its content into a new cell.")
    return problems, notes


# --- finding the notebook ----------------------------------------------------------------------------------

def _colab_notebook():
    """The live notebook from the Colab frontend, or None outside Colab."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import _message
        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=30)
        return reply["ipynb"] if reply and "ipynb" in reply else None
    except Exception:
        return None


def _kernel_notebook_paths():
    """Files Jupyter (JPY_SESSION_NAME, __session__) or VS Code (__vsc_ipynb_file__) name."""
    names = [os.environ.get("JPY_SESSION_NAME")]
    try:
        from IPython import get_ipython
        shell = get_ipython()
        if shell is not None:
            names += [shell.user_ns.get("__vsc_ipynb_file__"), shell.user_ns.get("__session__")]
    except Exception:
        pass
    paths = []
    for name in names:
        if not name or not str(name).endswith(".ipynb"):
            continue
        for candidate in (Path(name), Path.cwd() / name, Path.cwd() / Path(name).name):
            if candidate.is_file():
                paths.append(candidate)
                break
    return paths


def find_notebook(assignment, path=None):
    """(notebook dict, description of where it came from), or (None, why not)."""
    if path is not None:
        return json.loads(Path(path).read_text()), f"the file {path}"
    live = _colab_notebook()
    if live is not None:
        return live, "this Colab notebook"
    candidates = _kernel_notebook_paths()
    own = Path.cwd() / f"{assignment}.ipynb"
    if own.is_file():
        candidates.append(own)
    if not candidates:
        others = sorted(glob.glob(str(Path.cwd() / f"{assignment}*.ipynb")), key=os.path.getmtime)
        candidates += [Path(p) for p in others[-1:]]
    if not candidates:
        return None, (f"no {assignment}.ipynb in {Path.cwd()}: call "
                      f'selfcheck.check_notebook("{assignment}", path="path/to/{assignment}.ipynb")')
    chosen = candidates[0]
    return json.loads(chosen.read_text()), f"the saved file {chosen} (save the notebook before checking)"


# --- the self-check cell ------------------------------------------------------------------------------

COLAB_LINK = re.compile(r"\(\s*(https://colab\.research\.google\.com/github/[^)\s]+)\s*\)")


def colab_link(nb):
    """The notebook's own *Open in Colab* link (its badge cell), where a fresh copy opens; or None."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            found = COLAB_LINK.search(_text(cell.get("source")))
            if found:
                return found.group(1)
    return None


def report(assignment, nb, where, expected):
    """The self-check's text, and whether the notebook is gradable."""
    problems, notes = compare(nb, expected)
    graded = sum(1 for e in expected if e["kind"] != "locked")
    lines = []
    if problems:
        lines.append(f"Self-check of {where}: {len(problems)} problem(s) to fix before you submit, "
                     "or nbgrader cannot grade this notebook properly:")
        lines += [f"  {n}. {text}" for n, text in enumerate(problems, 1)]
        fresh = colab_link(nb)
        if any(FRESH_COPY in text for text in problems):
            lines.append("A fresh copy: " + (f"open {fresh} (File > Save a copy in Drive), " if fresh else "")
                         + f"or download release/{assignment}/{assignment}.ipynb again. Copy your answers into "
                         "its answer cells one by one (paste into the existing cells; do not create new "
                         "ones), then run this check again.")
    else:
        lines.append(f"Self-check of {where}: gradable. All {graded} graded and answer cells are present "
                     "once each, with their grading metadata.")
    if notes:
        lines.append("Good to know:")
        lines += [f"  - {text}" for text in notes]
    return "\n".join(lines), not problems


def check_notebook(assignment, path=None):
    """Print whether the notebook of ``assignment`` can be graded, and what to fix if not.

    Never raises (a check that cannot run says why) and returns nothing, so the
    cell shows only the report. Does nothing while nbgrader itself runs the
    notebook. :func:`is_gradable` is the same check as a boolean.
    """
    is_gradable(assignment, path)


def is_gradable(assignment, path=None, out=print):
    """The self-check: report through ``out``, return True when the notebook can be graded."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return True
    try:
        expected = load_expected(assignment)
    except Exception:
        out(f"Self-check: the course package lacks the list of graded cells of '{assignment}' "
            "(a course problem, not yours: please report it).")
        return False
    try:
        nb, where = find_notebook(assignment, path)
    except Exception as error:
        out(f"Self-check: the notebook could not be read ({type(error).__name__}: {error}).")
        return False
    if nb is None:
        out(f"Self-check: could not find the notebook ({where}).")
        return False
    text, ok = report(assignment, nb, where, expected)
    out(text)
    return ok
