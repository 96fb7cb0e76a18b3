"""Collecting submissions: whatever an instructor received, one Entry per file.

``collect(inputs, assignment, roster=None, workdir=...)`` takes one or more
paths and returns a list of :class:`Entry`, one for every file that could be
a submission. Each file is copied (or extracted) under ``workdir`` so later
steps never touch the instructor's originals.

Inputs
------
Each input is one of:

* a **single file** (normally ``.ipynb``);
* a **folder** of notebooks with any names, searched recursively (Colab
  downloads: ``resnet18.ipynb``, ``Copy of resnet18.ipynb``,
  ``resnet18 (1).ipynb``, ``jane_doe_resnet18.ipynb``);
* a **zip file**, e.g. an LMS export (Canvas, Moodle) or a zipped folder;
* an **nbgrader tree** ``submitted/<student>/<assignment>/<assignment>.ipynb``
  (a folder or zip that holds a ``submitted`` folder, or is one). Only the
  files of this assignment count; other assignments' folders and nbgrader's
  ``timestamp.txt`` are ignored.

Inside folders and zips, operating-system junk is ignored: ``__MACOSX/``,
``.ipynb_checkpoints/``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, and
any file or folder whose name starts with ``.`` or ``~$``. Every other file
yields exactly one Entry. A file that cannot be graded still gets an Entry,
with ``reason`` saying why (not an ``.ipynb`` file, too large, a link, an
unsafe path in a zip, an encrypted or corrupt zip member, a zip inside the
zip), so that every file the instructor received is accounted for.

Student ids
-----------
A roster, when given, wins. It is a CSV file with a ``student_id`` column and
a ``match`` column (a case-insensitive substring of the file's path inside
its input, e.g. ``jane doe`` or ``doejane``) and/or a ``file`` column (the
exact file name). An exact ``file`` match beats a ``match`` match; among
``match`` matches the longest wins. Files that match no roster row get an id
from the rules below, with a note.

A Canvas gradebook export (columns ``Student``, ``ID``, ``SIS User ID``,
``SIS Login ID``, ``Section`` and assignment columns) is a roster too: a
Canvas submission file (``<login>_<user id>_<submission id>_<name>``)
belongs to the row whose ``ID`` is its user id, any other file to the row
whose name (``Doe, Jane`` -> ``doejane``) it contains. The student id is the
SIS login (before any ``@``), else the SIS user id, else ``canvas_<ID>``,
made valid.

Ambiguity is an error, never a guess: a file that fits two roster rows
equally well, and the notebooks of one roster student when there are
several, get ``reason`` naming the rows or files and ``status = "error"``.
:func:`roster_missing` lists the roster's students that sent no file.

Without a roster match, the id comes from where the file came from:

* nbgrader tree: the ``<student>`` folder name.
* Canvas (files named ``<login>[_LATE]_<user id>_<submission id>_<name>``):
  the leading login token, e.g. ``doejane`` from
  ``doejane_LATE_12345_67890_resnet18-1.ipynb``.
* Moodle (folders named ``<Full Name>_<number>_assignsubmission_<plugin>_``):
  the number after the name (``12345`` for ``Jane Doe_12345_...``); the
  slug of the name where there is no number.
* any other file: the slug of the file name's stem with noise removed:
  ``Copy of``, `` (1)``, a trailing ``-1``, the assignment's name and the
  separators around them (``jane_doe_resnet18.ipynb`` -> ``jane_doe``). If
  nothing is left (``resnet18.ipynb``, ``Copy of resnet18.ipynb``), the
  name of the folder holding the file inside the input is used if there is
  one (``jane/resnet18.ipynb`` -> ``jane``), else the slug of the whole stem
  (``resnet18``, ``copy_of_resnet18``).

A slug keeps ASCII letters and digits (accents are dropped: ``José`` ->
``jose``), lower-cased; runs of anything else become one ``_``. Ids are
valid nbgrader student ids (letters, digits, ``_``, ``-``). Ids are unique
within the batch: a repeated id gets a suffix ``_2``, ``_3``, ... (in input
order, notebooks before other files, roster ids first) and the entry a note
saying so. But an id taken from file names is never first come, first
served: when two notebooks without a roster match give the same id
(``bob.ipynb`` and ``Copy of bob.ipynb``), both are ``error`` entries whose
reason names the files, as for an ambiguous roster match. A file whose name
names no student (``resnet18.ipynb``, the name the student guide asks for)
gets a note that a roster is needed (:data:`NEEDS_ROSTER`).
"""
import csv
import hashlib
import os
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 200 * 1024 ** 2   # one file (or zip member)
MAX_ZIP_BYTES = 2 * 1024 ** 3      # all members of one zip, extracted
CHUNK = 1024 ** 2

JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".ipynb_checkpoints"}

CANVAS = re.compile(r"^(?P<login>[^_]+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<sub>\d+)_(?P<name>.+)$", re.I)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<number>\d+)_assignsubmission_(?P<plugin>[a-z]+)_$", re.I)
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
NEEDS_ROSTER = "the file name names no student: grade with a roster (--roster) to say whose file it is"


@dataclass
class Entry:
    """One received file.

    ``source``: the file as the instructor would name it (``upload.zip!a/b.ipynb``);
    ``student_id``: a valid, batch-unique nbgrader student id;
    ``path``: the copy under workdir (None when the file was not extracted);
    ``sha256``: of the raw bytes (None when not read);
    ``kind``: ``nbgrader``, ``canvas``, ``moodle`` or ``file``;
    ``reason``: why the file cannot be graded, or None;
    ``notes``: what intake decided along the way (ids, roster).
    """
    source: str
    student_id: str
    path: Path | None
    sha256: str | None
    kind: str = "file"
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    late: bool = False
    status: str = "unusable"   # what a row of this entry says when ``reason`` is set
    roster_id: str | None = None   # the roster student this file was given to


def slug(text):
    """ASCII letters and digits, lower-cased; anything else becomes one ``_``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def clean_stem(stem, assignment):
    """The student part of a downloaded file's stem (may be empty)."""
    s = stem
    s = re.sub(r"(?i)\bcopy of\b", " ", s)
    s = re.sub(r"\s*\(\d+\)", " ", s)          # "name (1)"
    s = re.sub(r"-\d+$", "", s.strip())       # Canvas resubmission "name-1"
    s = slug(s)
    a = slug(assignment)
    if a:
        s = re.sub(rf"(^|_){re.escape(a)}(?=_|$)", "_", s)
    return s.strip("_")


def is_junk(parts):
    for i, part in enumerate(parts):
        low = part.lower()
        if low in JUNK_DIRS or (part.startswith(".") and part != "..") or part.startswith("~$"):
            return True
        if i == len(parts) - 1 and low in JUNK_NAMES:
            return True
    return False


def unsafe(name):
    """Why a zip member's name is unsafe to use as a path, or None."""
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path leaves the archive (..)"
    if "\x00" in name:
        return "NUL in name"
    return None


# --- members: files of an input, whatever its kind ---------------------------

@dataclass
class _Member:
    parts: tuple          # path inside the input
    source: str           # for Entry.source
    open: object = None   # () -> binary file object; None when unreadable
    size: int = 0
    reason: str | None = None


def _folder_members(root, label):
    members = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root).parts
        keep = []
        for d in sorted(dirnames):
            if is_junk(rel + (d,)):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                members.append(_Member(rel + (d,), f"{label}/{'/'.join(rel + (d,))}",
                                       reason="a symbolic link: not followed"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            parts = rel + (name,)
            if is_junk(parts):
                continue
            full = os.path.join(dirpath, name)
            m = _Member(parts, f"{label}/{'/'.join(parts)}")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                m.reason = "a symbolic link: not followed"
            elif not stat.S_ISREG(st.st_mode):
                m.reason = "not a regular file"
            else:
                m.size = st.st_size
                m.open = (lambda p=full: open(p, "rb"))
            members.append(m)
    return members


def _zip_members(zf, label):
    members = []
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        name = info.filename
        parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
        if not parts or is_junk(parts):
            continue
        m = _Member(parts, f"{label}!{name}", size=info.file_size)
        mode = info.external_attr >> 16
        if unsafe(name):
            m.reason = f"unsafe path in the zip ({unsafe(name)}): not extracted"
        elif stat.S_ISLNK(mode):
            m.reason = "a symbolic link in the zip: not followed"
        elif info.flag_bits & 0x1:
            m.reason = "an encrypted zip member: cannot be read"
        else:
            m.open = (lambda i=info: zf.open(i))
        members.append(m)
    return members


# --- classifying members ------------------------------------------------------

def _nbgrader_index(parts, root_name):
    """Index of the ``submitted`` component in ``parts`` (-1 for the root), or None."""
    for i, p in enumerate(parts):
        if p == "submitted" and len(parts) == i + 4:
            return i
    if root_name == "submitted" and len(parts) == 3:
        return -1
    return None


def _identify(members, root_name, assignment):
    """[(member, kind, id, late, named)] for the members that count, in input order; ``named``: the id
    comes from something that names the student (not only the assignment's name)."""
    nbg = [m for m in members if _nbgrader_index(m.parts, root_name) is not None]
    out = []   # (member, kind, id, late, named)
    if nbg:
        # An nbgrader tree: only this assignment's files; nbgrader's own timestamp.txt is not a submission.
        for m in nbg:
            i = _nbgrader_index(m.parts, root_name)
            student, assign, name = m.parts[i + 1:i + 4]
            if assign != assignment or name == "timestamp.txt":
                continue
            out.append((m, "nbgrader", student, False, True))
        return out
    for m in members:
        moodle = MOODLE.match(m.parts[0]) if len(m.parts) > 1 else None
        canvas = CANVAS.match(m.parts[-1])
        if moodle:
            out.append((m, "moodle", moodle["number"] or slug(moodle["name"]), False, True))
        elif canvas and len(m.parts) == 1:
            out.append((m, "canvas", canvas["login"], bool(canvas["late"]), True))
        else:
            stem = m.parts[-1].split(".ipynb")[0] if ".ipynb" in m.parts[-1].lower() else Path(m.parts[-1]).stem
            sid = clean_stem(stem, assignment)
            if not sid and len(m.parts) > 1:
                sid = clean_stem(m.parts[-2], assignment) or slug(m.parts[-2])
            out.append((m, "file", sid or slug(stem), False, bool(sid)))
    return out


# --- roster -------------------------------------------------------------------

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def read_roster(path):
    """[{student_id, match, file, canvas_id}] from a roster CSV or a Canvas gradebook export.

    Invalid ids in a plain roster are an error (ValueError)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        if set(CANVAS_COLUMNS) <= set(fields):
            return [_canvas_row(row) for row in canvas_students(reader)]
        columns = {c.lower() for c in fields}
        if "student_id" not in columns or not columns & {"match", "file"}:
            raise ValueError(f"roster {path}: needs a student_id column and a match or file column "
                             f"(or the columns of a Canvas gradebook export: {', '.join(CANVAS_COLUMNS)})")
        rows = []
        for n, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            sid = row.get("student_id", "")
            if not sid:
                continue
            if not STUDENT_ID.match(sid):
                raise ValueError(f"roster {path} line {n}: {sid!r} is not a valid student id "
                                 "(letters, digits, _ and - only)")
            if not row.get("match") and not row.get("file"):
                raise ValueError(f"roster {path} line {n}: {sid} has neither match nor file")
            rows.append({"student_id": sid, "match": row.get("match", ""), "file": row.get("file", ""),
                         "canvas_id": ""})
    return rows


def canvas_students(reader):
    """The student rows of a Canvas gradebook export (not its "Points Possible" and similar rows)."""
    for row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if row.get("ID") and row.get("Student"):
            yield row


def canvas_student_id(row):
    """An nbgrader id for a Canvas gradebook row: SIS login (before '@'), SIS user id or canvas_<ID>."""
    for candidate in (row.get("SIS Login ID", "").split("@")[0], row.get("SIS User ID", "")):
        if candidate:
            return candidate if STUDENT_ID.match(candidate) else slug(candidate) or f"canvas_{row['ID']}"
    return f"canvas_{slug(row['ID']) or 'student'}"


def _canvas_row(row):
    squashed = re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", row["Student"]).encode("ascii", "ignore")
                      .decode().lower())
    return {"student_id": canvas_student_id(row), "match": squashed, "file": "", "canvas_id": row["ID"]}


def roster_id(rows, parts):
    """(student_id or None, note or None, ambiguous) for a file at ``parts`` inside its input."""
    name, path = parts[-1], "/".join(parts).lower()
    canvas = CANVAS.match(name)
    exact = {r["student_id"] for r in rows if (r["file"] and r["file"] == name)
             or (canvas and r["canvas_id"] and r["canvas_id"] == canvas["user"])}
    if len(exact) == 1:
        return exact.pop(), None, False
    if len(exact) > 1:
        return None, f"roster rows {', '.join(sorted(exact))} all name the file {name}", True
    hits = [(len(r["match"]), r["student_id"]) for r in rows if r["match"] and r["match"].lower() in path]
    if not hits:
        return None, "not on the roster: id from the file name", False
    best = max(h[0] for h in hits)
    ids = sorted({sid for n, sid in hits if n == best})
    if len(ids) > 1:
        return None, f"roster rows {', '.join(ids)} fit this file equally well", True
    return ids[0], None, False


def roster_missing(rows, entries):
    """The roster's student ids that no entry came from."""
    sent = {e.roster_id for e in entries if e.roster_id}
    return sorted({r["student_id"] for r in rows} - sent)


def _refuse_shared_ids(entries, owner, reason):
    """Every gradable entry whose ``owner(entry)`` (an id, or None) another one shares becomes an
    error row; ``reason(id, group, names)`` says why, naming the files."""
    groups = {}
    for e in entries:
        key = owner(e) if e.reason is None else None
        if key is not None:
            groups.setdefault(key, []).append(e)
    for key, group in groups.items():
        if len(group) > 1:
            names = ", ".join(e.source for e in group)
            for e in group:
                e.reason, e.status = reason(key, group, names), "error"


def _ambiguous_owners(entries):
    """Notebooks given by the roster to a student who has several: error rows naming the files."""
    _refuse_shared_ids(entries, lambda e: e.roster_id or None,
                       lambda sid, group, names: (f"the roster gives {sid} several files ({names}): "
                                                  "name the right one in a `file` column of the roster"))


# --- collect ------------------------------------------------------------------

def _copy(member, target):
    """Copy a member's bytes to ``target`` with a size bound; (sha256, size, reason)."""
    digest, size = hashlib.sha256(), 0
    try:
        with member.open() as src, open(target, "wb") as dst:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise OverflowError
                digest.update(chunk)
                dst.write(chunk)
    except OverflowError:
        target.unlink(missing_ok=True)
        return None, size, f"larger than {MAX_FILE_BYTES // 1024 ** 2} MB: not extracted"
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
        target.unlink(missing_ok=True)
        return None, size, f"could not be read ({type(error).__name__}: {error})"
    return digest.hexdigest(), size, None


def _safe_name(name):
    stem = re.sub(r"[^A-Za-z0-9._ ()-]+", "_", name).strip(" .") or "file"
    return stem[-120:]


def collect(inputs, assignment, roster=None, workdir=None):
    """[Entry] for the files of ``inputs`` (one path or several), copied under ``workdir``.

    See the module docstring for the inputs understood and the naming rules.
    A missing input path is an error (FileNotFoundError); a bad file inside an
    input is an Entry with a ``reason``.
    """
    if workdir is None:
        raise TypeError("collect() needs a workdir")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    rows = read_roster(roster) if roster else None
    files_dir = Path(workdir) / "files"
    files_dir.mkdir(parents=True, exist_ok=True)

    found = []   # (member, kind, rule_id, late, named)
    open_zips = []
    try:
        for item in inputs:
            path = Path(item)
            if not path.exists():
                raise FileNotFoundError(f"no such input: {path}")
            label = str(item)
            if path.is_dir():
                members = _folder_members(path, label.rstrip("/\\"))
                found += _identify(members, path.name, assignment)
            elif path.suffix.lower() == ".zip" or (not path.suffix and zipfile.is_zipfile(path)):
                try:
                    zf = zipfile.ZipFile(path)
                except (zipfile.BadZipFile, OSError) as error:
                    found.append((_Member((path.name,), label, reason=f"not a valid zip file ({error})"),
                                  "file", slug(path.stem) or "file", False, True))
                    continue
                open_zips.append(zf)
                found += _identify(_zip_members(zf, label), path.stem, assignment)
            else:
                m = _Member((path.name,), label, open=(lambda p=path: open(p, "rb")), size=path.stat().st_size)
                found += _identify([m], None, assignment)

        # Extract in input order, bounding each zip's total.
        entries, zip_totals = [], {}
        for n, (m, kind, rule_id, late, named) in enumerate(found, start=1):
            entry = Entry(source=m.source, student_id=rule_id, path=None, sha256=None, kind=kind,
                          reason=m.reason, late=late)
            name = m.parts[-1]
            zip_label = m.source.split("!")[0] if "!" in m.source else None
            if entry.reason is None and m.open is not None:
                if m.size > MAX_FILE_BYTES:
                    entry.reason = f"larger than {MAX_FILE_BYTES // 1024 ** 2} MB: not extracted"
                elif zip_label and zip_totals.get(zip_label, 0) + m.size > MAX_ZIP_BYTES:
                    entry.reason = f"the zip holds more than {MAX_ZIP_BYTES // 1024 ** 3} GB: not extracted"
                else:
                    target = files_dir / f"{n:04d}-{_safe_name(name)}"
                    digest, size, reason = _copy(m, target)
                    if zip_label:
                        zip_totals[zip_label] = zip_totals.get(zip_label, 0) + size
                    if reason:
                        entry.reason = reason
                    else:
                        entry.path, entry.sha256 = target, digest
            if entry.reason is None:
                low = name.lower()
                if low.endswith(".zip"):
                    entry.reason = "a zip inside the input: unpack it and submit the notebook itself"
                elif ".ipynb" not in low:
                    ext = Path(name).suffix or "(no extension)"
                    entry.reason = f"not a notebook file ({ext}): submit the .ipynb file"
            if rows is not None:
                sid, note, ambiguous = roster_id(rows, m.parts)
                if sid:
                    entry.student_id = entry.roster_id = sid
                if ambiguous and entry.reason is None:
                    entry.reason, entry.status = f"ambiguous: {note}", "error"
                elif note:
                    entry.notes.append(note)
            if not STUDENT_ID.match(entry.student_id or ""):
                entry.student_id = slug(entry.student_id or "") or "student"
            if not named and entry.roster_id is None and entry.reason is None:
                entry.notes.append(NEEDS_ROSTER)
            entries.append(entry)
    finally:
        for zf in open_zips:
            zf.close()
    _ambiguous_owners(entries)
    _ambiguous_names(entries)
    _deduplicate(entries)
    return entries


def _ambiguous_names(entries):
    """Notebooks without a roster match that give the same id: error entries naming each other, so
    that a copy of someone's notebook cannot take that someone's id by sorting first."""
    _refuse_shared_ids(entries, lambda e: e.student_id if e.roster_id is None else None,
                       lambda sid, group, names: (f"ambiguous: {len(group)} files give the student id {sid} "
                                                  f"({names}): grade with a roster (--roster) that names each "
                                                  "file's student"))


def _deduplicate(entries):
    """Make ids unique: notebooks get first pick (those the roster named first), then other files,
    each in input order."""
    taken = {}
    def not_a_notebook(e):   # error entries are notebooks too (ambiguous ones)
        return e.reason is not None and e.status != "error"
    order = sorted(range(len(entries)), key=lambda i: (not_a_notebook(entries[i]), entries[i].roster_id is None, i))
    for i in order:
        e = entries[i]
        base, n = e.student_id, 1
        sid = base
        while sid in taken:
            n += 1
            sid = f"{base}_{n}"
        if sid != base:
            e.notes.append(f"student id {base} is already used by {entries[taken[base]].source}: "
                           f"this file is {sid}")
            e.student_id = sid
        taken[sid] = i
