"""Restoring a received notebook into one nbgrader can grade.

``load_submission(path, release_nb, source_nb, all_source_nbs)`` reads a
student's file and returns ``(nb, notes)``: a version-4 notebook rebuilt on
the release's skeleton, and a list of one-line notes on what was repaired.
A file that cannot be graded raises :class:`Unusable` with a one-line reason.

Reading:

* empty file, not UTF-8, invalid JSON (with its line), JSON that is not a
  notebook, nbformat 1 or 2, or a file over ``MAX_BYTES`` -> Unusable.
* what is parsed is bounded, so that no file can make restoring slow or
  hungry: JSON nested deeper than ``MAX_DEPTH`` (checked without recursion),
  more than ``MAX_CELLS`` cells or a cell's source over ``MAX_CELL_CHARS``
  -> Unusable; code over ``AST_MAX_CHARS`` is read with a regex, not ``ast``
  (``ast.parse`` takes about 600 bytes of memory per byte of code). The
  matching below is n log n in the number of cells. Both front doors run
  this module in a child process under a time and memory limit
  (``limited.py``), and any failure while restoring becomes Unusable.
* nbformat 3 is upgraded to 4 ("converted from nbformat 3").
* outputs are kept unless all outputs and attachments of the kept cells
  come to more than ``MAX_OUTPUT_BYTES``; then all are removed ("outputs
  removed"): grading re-executes the notebook anyway.

Rebuilding, whatever the student did to the cells:

* locked cells (text, setup, demos) and test cells always come from the
  release, at the release's place and with its ids and metadata; so deleted,
  duplicated, moved or edited test cells change nothing;
* each solution cell takes its source from one student cell, found by
  1. its nbgrader ``grade_id`` (the student's metadata is intact; among
     duplicates the last one that differs from the stub wins, as it would
     when the notebook runs top to bottom),
  2. the names the release's stub defines (``class Residual``, ``def
     make_stem``; read with ``ast``, or a regex when the cell does not
     parse), preferring a cell between the same anchors as in the release,
  3. its position between anchors: student cells equal or nearly equal
     (difflib ratio > 0.9) to locked release cells,
  4. content similar to the stub (an untouched stub copied without metadata);
  else the release's stub is used ("graded as blank");
* the student's other cells (helpers, experiments) keep their place after
  the nearest preceding anchor, as ordinary cells without nbgrader metadata;
  empty cells and unchanged copies of stubs are left out.

Which assignment: the student's cells are compared with the locked cells
and solution names of every assignment's source notebook; a notebook that
fits another assignment better is refused ("this is the bottleneck notebook,
not resnet18"), one that fits none likewise ("no cell of the resnet18
notebook found").
"""
import ast
import bisect
import copy
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_BYTES = 200 * 1024 ** 2
MAX_OUTPUT_BYTES = 5 * 1024 ** 2
MAX_DEPTH = 64             # JSON nesting; a notebook needs about 8, widget state a few more
MAX_CELLS = 5000
MAX_CELL_CHARS = 1024 ** 2  # one cell's source
AST_MAX_CHARS = 100_000     # code read with ast; longer cells with a regex
NEAR = 0.9             # difflib ratio for "the same cell, slightly edited"
MIN_NEAR_CHARS = 20    # shorter cells must match exactly
STUB_SIMILAR = 0.9     # an untouched stub


class Unusable(Exception):
    """The file cannot be graded; ``reason`` is one line for the student and instructor."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# --- reading ------------------------------------------------------------------

def norm(text):
    """Cell text compared loosely: no trailing spaces, no blank lines at the ends."""
    if isinstance(text, list):
        text = "".join(text)
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _nbgrader_meta(cell):
    meta = cell.get("metadata")
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg if isinstance(nbg, dict) else {}


def read_notebook_dict(path):
    """(v4 notebook dict, notes) from a file, or Unusable."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise Unusable(f"file too large: {size / 1024 ** 2:.0f} MB (limit {MAX_BYTES // 1024 ** 2} MB)")
    raw = path.read_bytes()
    if not raw.strip():
        raise Unusable("empty file")
    if raw[:2] == b"PK":
        raise Unusable("not a notebook: a zip archive")
    if raw[:5] == b"%PDF-":
        raise Unusable("not a notebook: a PDF file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unusable("not a notebook: not a text file") from None
    del raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise Unusable(f"not a notebook: invalid JSON (line {error.lineno})") from None
    except RecursionError:
        raise Unusable("not a notebook: JSON nested too deeply") from None
    del text
    if _depth_exceeds(data, MAX_DEPTH):
        raise Unusable(f"not a notebook: JSON nested more than {MAX_DEPTH} levels deep")
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data):
        raise Unusable("not a notebook: JSON without notebook cells")
    notes = []
    major = data.get("nbformat")
    if isinstance(major, int) and major < 3:
        raise Unusable(f"not a notebook: nbformat {major} is too old")
    if major == 3 or ("worksheets" in data and "cells" not in data):
        try:
            data = nbformat.v4.upgrade(nbformat.from_dict(data), from_version=3,
                                       from_minor=data.get("nbformat_minor", 0))
        except Exception as error:  # noqa: BLE001 (any failure of the converter)
            raise Unusable(f"not a notebook: nbformat 3 file that could not be converted ({error})") from None
        notes.append("converted from nbformat 3")
    if not isinstance(data.get("cells"), list):
        raise Unusable("not a notebook: JSON without notebook cells")
    _check_cells(data["cells"])
    try:
        # Multi-line strings as one string each, as nbformat.read gives them.
        data = nbformat.v4.rwbase.rejoin_lines(nbformat.from_dict(data))
    except Exception:  # noqa: BLE001 (malformed cells are dealt with one by one later)
        pass
    return data, notes


def _depth_exceeds(data, limit):
    """Whether JSON data nests deeper than ``limit``; iterative, so any depth is safe to check."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _check_cells(cells):
    """Unusable when there are more cells, or longer ones, than a notebook of this course can need."""
    if len(cells) > MAX_CELLS:
        raise Unusable(f"not gradable: {len(cells)} cells (limit {MAX_CELLS})")
    for n, cell in enumerate(cells, start=1):
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        size = sum(len(s) for s in source if isinstance(s, str)) if isinstance(source, list) else len(str(source))
        if size > MAX_CELL_CHARS:
            raise Unusable(f"not gradable: cell {n} holds {size / 1024 ** 2:.1f} M characters "
                           f"(limit {MAX_CELL_CHARS // 1024 ** 2} M)")


# --- cells ----------------------------------------------------------------------

MAGIC = re.compile(r"^[ \t]*[%!].*$", re.M)
TOP_DEF = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)", re.M)


def defined_names(text):
    """Top-level names a code cell defines (def, class, simple assignment)."""
    if len(text) > AST_MAX_CHARS:
        return set(TOP_DEF.findall(text))
    try:
        tree = ast.parse(MAGIC.sub("", text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(TOP_DEF.findall(text))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@dataclass
class StudentCell:
    index: int
    cell_type: str
    source: str
    text: str
    grade_id: str | None
    raw: dict
    defs: set = field(default_factory=set)


def student_cells(data):
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = cell.get("source", "")
        source = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source or "")
        gid = _nbgrader_meta(cell).get("grade_id")
        c = StudentCell(len(cells), cell["cell_type"], source, norm(source), gid if isinstance(gid, str) else None,
                        cell)
        if c.cell_type == "code":
            c.defs = defined_names(c.text)
        cells.append(c)
    return cells


CLEARLY_OWN = 0.8


def similarity(a, b):
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    m = difflib.SequenceMatcher(None, a[:20000], b[:20000], autojunk=False)
    if m.real_quick_ratio() <= NEAR or m.quick_ratio() <= NEAR:
        return 0.0   # good enough for the thresholds used here (all >= NEAR)
    return m.ratio()


def stub_similarity(a, b):
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a[:20000], b[:20000], autojunk=False).ratio()


def _as_notebook(nb):
    if isinstance(nb, (str, os.PathLike)):
        return nbformat.read(nb, as_version=4)
    return nb


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_solution(cell):
    return bool(_meta(cell).get("solution"))


def _locked_texts(nb):
    """{normalized text: [cell index]} of a notebook's locked (non-solution) cells."""
    out = {}
    for i, cell in enumerate(nb.cells):
        if not _is_solution(cell):
            out.setdefault((cell.cell_type, norm(cell.source)), []).append(i)
    return out


def _match_locked(cell, nb, texts):
    """Release indices of locked cells equal or nearly equal to a student cell."""
    exact = texts.get((cell.cell_type, cell.text))
    if exact:
        return exact
    if len(cell.text) < MIN_NEAR_CHARS:
        return []
    best, where = NEAR, []
    for i, rc in enumerate(nb.cells):
        if rc.cell_type != cell.cell_type or _is_solution(rc):
            continue
        t = norm(rc.source)
        if len(t) < MIN_NEAR_CHARS:
            continue
        r = similarity(cell.text, t)
        if r > best:
            best, where = r, [i]
        elif r == best and where:
            where.append(i)
    return where


def fit(cells, nb):
    """Share of a notebook's locked cells and solution names found among ``cells``."""
    texts = _locked_texts(nb)
    found = total = 0
    student_defs = set().union(*(c.defs for c in cells)) if cells else set()
    locked_hit = set()
    for c in cells:
        if c.text:
            locked_hit.update(i for i in _match_locked(c, nb, texts) if len(norm(nb.cells[i].source)) >= 8)
    for i, cell in enumerate(nb.cells):
        if _is_solution(cell):
            names = defined_names(norm(cell.source)) if cell.cell_type == "code" else set()
            if names:
                total += 1
                found += bool(names & student_defs)
        elif len(norm(cell.source)) >= 8:
            total += 1
            found += i in locked_hit
    return found / total if total else 0.0


def _lis(pairs):
    """The longest run of (student index, release index) pairs increasing in both; pairs sorted by student index.

    Patience sorting, n log n: a student may paste a locked cell thousands of times."""
    tails, tail_at, prev = [], [], [-1] * len(pairs)   # tails[k]: least release index ending a run of k + 1
    for j, (_, r) in enumerate(pairs):
        k = bisect.bisect_left(tails, r)
        prev[j] = tail_at[k - 1] if k else -1
        if k == len(tails):
            tails.append(r)
            tail_at.append(j)
        elif r < tails[k]:          # on a tie the earlier copy stays, as it runs first
            tails[k], tail_at[k] = r, j
    out, j = [], tail_at[-1] if tail_at else -1
    while j != -1:
        out.append(pairs[j])
        j = prev[j]
    return out[::-1]


# --- the rebuild ----------------------------------------------------------------

def _assignment_name(source_nb, all_source_nbs, assignment):
    if assignment:
        return assignment
    for name, nb in all_source_nbs.items():
        if nb is source_nb:
            return name
    src = _as_notebook(source_nb)
    for name, nb in all_source_nbs.items():
        if _as_notebook(nb) == src:
            return name
    return "this assignment"


def load_submission(path, release_nb, source_nb, all_source_nbs, assignment=None):
    """(notebook, notes) ready for nbgrader, or raise Unusable.

    ``release_nb``/``source_nb``: this assignment's release and source
    notebooks (NotebookNode or path); ``all_source_nbs``: {assignment:
    source notebook or path} of every assignment, this one included.
    Whatever goes wrong with the student's file is Unusable with its reason:
    one file never stops the others.
    """
    try:
        return _load_submission(path, release_nb, source_nb, all_source_nbs, assignment)
    except (Unusable, MemoryError):
        raise
    except RecursionError:
        raise Unusable("not gradable: its structure is nested too deeply to restore") from None
    except Exception as error:  # noqa: BLE001 (a hostile file may break any library on the way)
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise Unusable(f"could not be restored ({type(error).__name__}: {detail})") from None


def _load_submission(path, release_nb, source_nb, all_source_nbs, assignment):
    release = _as_notebook(release_nb)
    sources = {name: _as_notebook(nb) for name, nb in all_source_nbs.items()}
    name = _assignment_name(source_nb, all_source_nbs, assignment)

    data, notes = read_notebook_dict(path)
    cells = student_cells(data)

    # Which assignment is this?
    own = fit(cells, release)
    # A notebook that clearly is this assignment's needs no costly comparison with the others.
    others = {} if own >= CLEARLY_OWN else {other: fit(cells, nb) for other, nb in sources.items() if other != name}
    other, best_other = max(others.items(), key=lambda kv: kv[1], default=(None, 0.0))
    if other and best_other > own and (own < 0.2 or best_other >= 2 * own):
        raise Unusable(f"this is the {other} notebook, not {name}")
    if own == 0:
        ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells}
        if not any(c.grade_id in ids for c in cells):
            raise Unusable(f"no cell of the {name} notebook found")

    nb, more = rebuild(cells, release)
    notes += more
    nb, more = _limit_outputs(nb)
    notes += more
    return nb, notes


def rebuild(cells, release):
    """(notebook on the release's skeleton, notes) from the student's cells."""
    notes = []
    rcells = release.cells
    by_gid = {_meta(c).get("grade_id"): i for i, c in enumerate(rcells) if _meta(c).get("grade_id")}
    texts = _locked_texts(release)
    solutions = [i for i, c in enumerate(rcells) if _is_solution(c)]
    stubs = {i: norm(rcells[i].source) for i in solutions}
    stub_defs = {i: defined_names(stubs[i]) if rcells[i].cell_type == "code" else set() for i in solutions}

    def gid(i):
        return _meta(rcells[i]).get("grade_id", f"cell {i}")

    def is_test(i):
        return bool(_meta(rcells[i]).get("grade")) and not _is_solution(rcells[i])

    # 1. Locked matches: by grade_id, else by content.
    locked_pairs, by_id_solution, via_content = [], {}, set()
    last = -1   # the highest release index matched so far
    for c in cells:
        r = by_gid.get(c.grade_id)
        if r is not None and rcells[r].cell_type == c.cell_type:
            if _is_solution(rcells[r]):
                by_id_solution.setdefault(r, []).append(c)
            else:
                locked_pairs.append((c.index, r))
                last = max(last, r)
            continue
        if not c.text:
            continue
        hits = _match_locked(c, release, texts)
        if hits:
            r = next((h for h in hits if h > last), hits[0])
            locked_pairs.append((c.index, r))
            last = max(last, r)
            via_content.add(c.index)
    anchors = _lis(locked_pairs)
    anchor_of = dict(anchors)                  # student index -> release index
    anchored = {r: s for s, r in anchors}       # release index -> student index
    used = set(anchor_of)
    dropped = set(s for s, _ in locked_pairs) - used
    twice, moved = [], []
    for s, r in locked_pairs:
        if s in dropped and is_test(r):
            (twice if r in anchored else moved).append(gid(r))
    for g in dict.fromkeys(twice):
        notes.append(f"test cell {g} appeared twice: the copy was ignored")
    for g in dict.fromkeys(moved):
        notes.append(f"test cell {g} was out of place: it runs at its place in the release")

    # 2. Solution cells.
    chosen = {}      # release index -> StudentCell
    extras_ok = set()
    for r, found in by_id_solution.items():
        nonstub = [c for c in found if c.text != stubs[r]]
        pick = (nonstub or found)[-1]
        chosen[r] = pick
        used.update(c.index for c in found)
        others = [c for c in found if c is not pick and c.text not in (stubs[r], pick.text)]
        extras_ok.update(c.index for c in others)
        if len(found) > 1:
            notes.append(f"solution cell {gid(r)} appeared {len(found)} times: the last one that differs "
                         "from the stub is graded" + ("; the others still run as ordinary cells" if others else ""))

    def gap(r):
        """Student index range (lo, hi) between the anchors around release index r."""
        before = [s for s, rr in anchors if rr < r]
        after = [s for s, rr in anchors if rr > r]
        return (before[-1] if before else -1), (after[0] if after else len(cells))

    def free(c, r):
        return c.index not in used and c.cell_type == rcells[r].cell_type and c.text

    open_solutions = [r for r in solutions if r not in chosen]
    # 2a. by the names the stub defines
    for r in open_solutions:
        if not stub_defs[r]:
            continue
        lo, hi = gap(r)
        cands = [c for c in cells if free(c, r) and c.defs & stub_defs[r]]
        inside = [c for c in cands if lo < c.index < hi]
        pick = (inside or cands or [None])[-1]
        if pick:
            chosen[r] = pick
            used.add(pick.index)
            if not inside:
                notes.append(f"solution cell {gid(r)} was out of place: it runs at its place in the release")
    # 2b. by position between anchors, or an untouched stub
    open_solutions = [r for r in solutions if r not in chosen]
    all_stub_defs = set().union(*stub_defs.values()) if stub_defs else set()
    groups = {}
    for r in open_solutions:
        groups.setdefault(gap(r), []).append(r)
    for (lo, hi), rs in groups.items():
        cands = [c for c in cells if c.index not in used and lo < c.index < hi and c.text
                 and not (c.defs & all_stub_defs)]
        for r in rs:
            mine = [c for c in cands if c.cell_type == rcells[r].cell_type and c.index not in used]
            stubby = [c for c in mine if stub_similarity(c.text, stubs[r]) >= STUB_SIMILAR]
            if stubby:
                pick = stubby[-1]
            elif len(rs) == 1 and mine:
                pick = max(mine, key=lambda c: (stub_similarity(c.text, stubs[r]), c.index))
            elif len(mine) == len([x for x in rs if rcells[x].cell_type == rcells[r].cell_type]) and mine:
                pick = mine[0]
            else:
                continue
            chosen[r] = pick
            used.add(pick.index)
    # 2c. whatever is left is graded as blank
    for r in solutions:
        if r in chosen:
            continue
        elsewhere = [c for c in cells if c.defs & stub_defs[r]]
        if elsewhere:
            names = ", ".join(sorted(stub_defs[r]))
            notes.append(f"solution cell {gid(r)} not found on its own: {names} is defined in another cell, "
                         "which still runs")
        else:
            notes.append(f"solution cell {gid(r)} not found: graded as blank")

    # Notes on metadata and missing cells.
    restored_meta = sum(1 for s in anchor_of if s in via_content) + sum(
        1 for r, c in chosen.items() if c.grade_id != gid(r))
    if restored_meta:
        notes.append(f"restored nbgrader metadata of {restored_meta} cells")
    missing_other = 0
    for r, c in enumerate(rcells):
        if _is_solution(c) or r in anchored:
            continue
        if is_test(r):
            notes.append(f"graded cell {gid(r)} was missing: restored from the release")
        else:
            missing_other += 1
    if missing_other and missing_other < len(rcells):
        notes.append(f"{missing_other} other locked cells were missing: restored from the release")
    edited = [gid(r) for s, r in anchors if is_test(r) and cells[s].text != norm(rcells[r].source)]
    if edited:
        notes.append(f"test cells changed by the student, graded with the release's version: {', '.join(edited)}")

    # 3. The student's other cells, after the nearest preceding placed cell.
    placed = _lis(sorted([(s, r) for s, r in anchors] + [(c.index, r) for r, c in chosen.items()]))
    extras = {}
    for c in cells:
        if c.index in used and c.index not in extras_ok:
            continue
        if c.index in dropped or not c.text:
            continue
        if c.text in stubs.values():
            continue
        after = max((r for s, r in placed if s < c.index), default=-1)
        extras.setdefault(after, []).append(c)

    # 4. Emit.
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(release.metadata))
    out.nbformat_minor = max(release.get("nbformat_minor", 5), 5)
    taken_ids = {c.get("id") for c in rcells}
    n_extra = 0
    dropped_meta = []

    def extra(c):
        nonlocal n_extra
        n_extra += 1
        while f"extra-{n_extra}" in taken_ids:
            n_extra += 1
        meta = {k: v for k, v in (c.raw.get("metadata") or {}).items() if k != "nbgrader"} \
            if isinstance(c.raw.get("metadata"), dict) else {}
        make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}[c.cell_type]
        try:
            cell = make(source=c.source, metadata=meta)
        except nbformat.ValidationError:   # e.g. a tag holding a comma, which JupyterLab lets one type
            cell = make(source=c.source)
            dropped_meta.append(cell)
        cell.id = f"extra-{n_extra}"
        _copy_outputs(c, cell)
        return cell

    for c in extras.get(-1, []):
        out.cells.append(extra(c))
    for r, rc in enumerate(rcells):
        cell = copy.deepcopy(rc)
        if r in chosen:
            cell.source = chosen[r].source
            _copy_outputs(chosen[r], cell)
        elif r in anchored:
            _copy_outputs(cells[anchored[r]], cell)
        out.cells.append(cell)
        for c in extras.get(r, []):
            out.cells.append(extra(c))
    if dropped_meta:
        notes.append(f"metadata of {len(dropped_meta)} of your own cells was not valid (e.g. a tag holding a "
                     "comma): left out")
    return out, notes


def _copy_outputs(student, cell):
    raw = student.raw
    if cell.cell_type == "code":
        outputs = raw.get("outputs")
        cell.outputs = [nbformat.from_dict(o) for o in outputs if isinstance(o, dict)] \
            if isinstance(outputs, list) else []
        count = raw.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
    elif isinstance(raw.get("attachments"), dict):
        cell.attachments = nbformat.from_dict(raw["attachments"])


def _strip_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif "attachments" in cell:
            del cell["attachments"]


def _limit_outputs(nb):
    """Remove all outputs when they are too large or invalid; (nb, notes)."""
    size = sum(len(json.dumps(c.get("outputs", []))) + len(json.dumps(c.get("attachments", {})))
               for c in nb.cells)
    notes = []
    if size > MAX_OUTPUT_BYTES:
        _strip_outputs(nb)
        notes.append(f"outputs removed ({size / 1024 ** 2:.0f} MB): grading runs the notebook again")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        _strip_outputs(nb)
        notes.append("outputs removed (not valid notebook outputs): grading runs the notebook again")
        nbformat.validate(nb)
    return nb, notes
