"""Publish the course without its answers: ``python -m autograder publish {students,self-study} OUT``.

This repository is the instructor's and stays private: ``source/`` holds
every solution and hidden test, ``notebooks/`` and ``samples/`` hold
solutions, and ``autograder/grade/`` is the grader. What students and readers
get is an *edition*, a folder meant to become a public repository of its own:

* ``students``: the release notebooks (``release/<a>/<a>.ipynb``, made by
  nbgrader, so without solutions and hidden tests), a README for students,
  the student guide (``GUIDE.md``, from ``docs/students.md``) with the
  local set-up script it describes, and the student runtime (``autograder/student/``) as a pip-installable
  package with its own ``pyproject.toml``: what the notebooks' setup cell
  installs from the edition's repository.
* ``self-study``: the complete notebooks with outputs
  (``notebooks/<a>.ipynb``), the same runtime package and a README for
  readers, to release when the instructor chooses.

Every badge and setup cell is pointed at the edition's own repository
(:func:`autograder.assign.boilerplate.point_at`); the runtime's list of
gradable cells is made from the published notebooks, so the self-check
accepts exactly them. Publishing is deterministic: the same course gives
byte-identical files. Into a folder that holds an earlier edition of the
same kind, everything but ``.git`` is replaced, so the instructor can commit
and push the new edition from there.
"""
import json
import re
import shutil
from pathlib import Path

import nbformat
from nbgrader.utils import compute_checksum

from .. import course
from ..student import selfcheck
from . import boilerplate
from .sources import SOURCES

EDITIONS = ("students", "self-study")
MARKER = ".course-edition.json"
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
BRANCH_NAME = re.compile(r"[A-Za-z0-9._/-]{1,100}")
RUNTIME = course.ROOT / "autograder" / "student"


class Refused(Exception):
    """Publishing cannot go ahead; the message is one sentence for the instructor."""


def check_arguments(edition, out, repository, branch):
    """Raise :class:`Refused` unless the edition can be written to ``out``."""
    if edition not in EDITIONS:
        raise Refused(f"Unknown edition {edition!r}: choose one of {', '.join(EDITIONS)}.")
    if not repository:
        raise Refused("Say which public GitHub repository the edition is for: --repository OWNER/NAME.")
    if not REPOSITORY_NAME.fullmatch(repository) or repository.endswith((".git", ".")) or ".." in repository:
        raise Refused(f"{repository!r} is not a GitHub repository name of the form OWNER/NAME.")
    if not BRANCH_NAME.fullmatch(branch) or branch.startswith(("/", "-")) or ".." in branch:
        raise Refused(f"{branch!r} is not a usable branch name.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Refused(f"{out} exists and is not a folder.")
    if out.is_dir() and any(p.name != ".git" for p in out.iterdir()):
        try:
            earlier = json.loads((out / MARKER).read_text())["edition"]
        except (OSError, ValueError, KeyError, TypeError):
            raise Refused(f"{out} is not empty and holds no earlier edition: choose an empty or new folder.") \
                from None
        if earlier != edition:
            raise Refused(f"{out} holds the {earlier} edition, not the {edition} edition: "
                          "publish each edition into its own folder.")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _published_notebook(path, assignment, home, where):
    """The notebook at ``path`` with its badge and setup cell pointing at ``home``."""
    nb = nbformat.read(path, as_version=4)
    for cell in boilerplate.point_at(nb, home, where):
        grading = cell.metadata.get("nbgrader")
        if grading and "checksum" in grading:
            grading["checksum"] = compute_checksum(cell)
    return nb


def _runtime_package(out, notebooks):
    """``autograder/student`` as the edition's package, with gradable cells made from ``notebooks``."""
    _write(out / "autograder" / "__init__.py",
           '"""The ResNet course\'s student runtime (see autograder.student)."""\n')
    for source in sorted(RUNTIME.rglob("*.py")):
        if "__pycache__" not in source.parts:
            _write(out / "autograder" / "student" / source.relative_to(RUNTIME), source.read_text())
    for assignment, nb in notebooks.items():
        _write(out / "autograder" / "student" / "gradable_cells" / f"{assignment}.json",
               json.dumps({"assignment": assignment, "cells": selfcheck.gradable_cells(nb)}, indent=1) + "\n")
    _write(out / "pyproject.toml", PYPROJECT)
    _write(out / "requirements.txt", REQUIREMENTS)


def publish(edition, out, repository, branch="main"):
    """Write the ``edition`` for ``repository`` (its ``branch``) into ``out``; return the files written."""
    check_arguments(edition, out, repository, branch)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.name != ".git":
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    home = boilerplate.Home(repository, branch)
    variant = "release" if edition == "students" else "self-study"
    notebooks, links = {}, {}
    for assignment in course.assignments():
        where = boilerplate.notebook_path(assignment, variant)
        nb = _published_notebook(course.ROOT / where, assignment, home, where)
        (out / where).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / where)
        notebooks[assignment], links[assignment] = nb, home.colab_url(where)
    # Only the student edition has self-check cells; its list of gradable cells is made from its notebooks.
    _runtime_package(out, notebooks if edition == "students" else {})
    if edition == "students":
        guide = (course.ROOT / "docs" / "students.md").read_text()
        _write(out / "GUIDE.md", guide.replace(boilerplate.UNPUBLISHED.repository, repository))
        _write(out / "scripts" / "make_venv.sh", (course.ROOT / "scripts" / "make_venv.sh").read_text())
        (out / "scripts" / "make_venv.sh").chmod(0o755)
    readme = STUDENT_README if edition == "students" else READER_README
    _write(out / "README.md", readme.format(table=_table(links, edition), repository=repository) + "\n" + SOURCES)
    _write(out / ".gitignore", "__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n.venv/\n")
    _write(out / MARKER, json.dumps({"edition": edition, "repository": repository, "branch": branch},
                                    indent=1, sort_keys=True) + "\n")
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".git" not in p.parts)


TOPICS = {"resnet18": "ResNet-18, piece by piece, trained on Fashion-MNIST",
          "bottleneck": "bottleneck blocks and a small ResNet, trained on CIFAR-10 with Adam"}


def _table(links, edition):
    label = "Assignment" if edition == "students" else "Notebook"
    rows = [f"| {label} | What you build | Open |", "|---|---|---|"]
    for number, (assignment, url) in enumerate(links.items(), 1):
        rows.append(f"| {number}. `{assignment}` | {TOPICS.get(assignment, '')} | [Open in Colab]({url}) |")
    return "\n".join(rows)


PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "resnet-course-runtime"
version = "0.1.0"
description = "What the ResNet course's notebooks import: Colab setup, data loading, visible checks, self-check"
requires-python = ">=3.10"
readme = "README.md"

[tool.setuptools]
packages = ["autograder", "autograder.student", "autograder.student.checks"]

[tool.setuptools.package-data]
"autograder.student" = ["gradable_cells/*.json"]
"""

REQUIREMENTS = """\
# For Jupyter on your own computer (Python 3.11); Colab needs none of this.
mxnet==1.9.1
numpy==1.23.5
d2l==1.0.3
matplotlib==3.7.2
ipython<9
jupyterlab
# the digits of the optional experiment in the first notebook
scikit-learn==1.3.2
scipy==1.10.1  # the release d2l 1.0.3 pins
"""

STUDENT_README = """\
# Residual Networks (ResNet) in MXNet Gluon: the assignments

{table}

## Working in Google Colab

1. Click **Open in Colab** for the assignment, then *File > Save a copy in
   Drive* and work in that copy. Rename it back to the assignment's name
   (`resnet18.ipynb`, not `Copy of resnet18.ipynb`).
2. *Runtime > Change runtime type > T4 GPU* before you run anything (only the
   training at the end needs the GPU; without one, everything else still
   works).
3. Run the first code cell, *Setup for Google Colab*. It installs MXNet 1.9.1,
   d2l and this repository's small `autograder` package, and prints one line
   when it is done. Run it again after every restart of the runtime.
4. Fill in the cells marked `# YOUR CODE HERE` (delete the
   `raise NotImplementedError()` line) and run the test cell after each
   exercise: it prints `passed: ...` or says what to fix. Type into the given
   cells; do not delete, copy or retype them, since grading finds your
   answers by their hidden metadata.
5. Run the last cell, the self-check. It says whether the notebook can still
   be graded and, if not, what to fix.
6. *File > Download > Download .ipynb* and hand in that file as your course
   asks.

## Working on your own computer

MXNet 1.9.1 needs Python 3.11 on Linux (x86-64) or an Intel Mac:

```bash
git clone https://github.com/{repository}.git resnet-course
cd resnet-course
scripts/make_venv.sh
.venv/bin/jupyter lab release/resnet18/resnet18.ipynb
```

The setup cell does nothing outside Colab. Save the notebook before running
the self-check: it reads the saved file. [GUIDE.md](GUIDE.md) has the details:
timings, the self-check's messages, a local NVIDIA GPU.
"""

READER_README = """\
# Residual Networks (ResNet) in MXNet Gluon: the complete notebooks

The worked notebooks of the course, with their solutions and outputs, to read
or to run.

{table}

In Colab, run the first code cell (*Setup for Google Colab*) before the
others: it installs MXNet 1.9.1, d2l and this repository's small `autograder`
package. The training cells need the data sets (downloaded on first use) and
are much faster on a GPU runtime (*Runtime > Change runtime type > T4 GPU*);
their outputs are not included, since this edition shows only outputs that
were really computed. The first notebook's optional experiment, three small
networks trained on scikit-learn's bundled digits in well under a minute on
a CPU, is included with its measured outputs: it shows a deep plain network
training worse than a shallow one, and the same deep network with shortcuts
training best.

On your own computer (Python 3.11, Linux or an Intel Mac):

```bash
git clone https://github.com/{repository}.git resnet-course && cd resnet-course
python3.11 -m venv .venv && .venv/bin/pip install -r requirements.txt -e .
.venv/bin/jupyter lab notebooks/
```
"""
