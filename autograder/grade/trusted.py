"""From a submission to verdicts the student's code cannot forge.

``plan`` reads, from the trusted source notebook, which parts each graded
cell checks (its ``check.<part>(<name>)`` and ``hidden.<part>(<name>)`` calls). ``job`` turns a submission
into work for a sandboxed worker: its code cells to run, and in place of
each graded cell a probe that only observes. ``verdicts`` judges the
observations in this process, which never imports student code, against
challenges drawn here, secretly, for this submission.
"""
import ast
import importlib
from dataclasses import asdict

import nbformat
import numpy as onp

from .. import course
from ..student.parts import judge_safely


def _nbgrader(cell):
    return cell.metadata.get("nbgrader", {})


def plan(assignment):
    """{grade_id: [(part, variable), ...]} for every graded cell of the source notebook."""
    nb = nbformat.read(course.source_notebook(assignment), as_version=4)
    modules = course.CHECK_MODULES[assignment]
    calls = {}
    for cell in nb.cells:
        if not _nbgrader(cell).get("grade"):
            continue
        found = []
        for node in ast.walk(ast.parse(cell.source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in modules):
                names = [a.id for a in node.args if isinstance(a, ast.Name)]
                if len(names) != 1:
                    raise ValueError(f"{assignment}: graded cell {_nbgrader(cell)['grade_id']} must call "
                                     "check.<part>(<name>) or hidden.<part>(<name>) with one name")
                found.append((node.func.attr, names[0]))
        if not found:
            raise ValueError(f"{assignment}: graded cell {_nbgrader(cell)['grade_id']} calls no check")
        calls[_nbgrader(cell)["grade_id"]] = found
    return calls


def parts_of_modules(modules):
    """Every part of the given check modules, by name (visible and hidden parts have distinct names)."""
    parts = {}
    for module in modules:
        parts.update(importlib.import_module(module).PARTS)
    return parts


def all_parts(assignment):
    return parts_of_modules(course.CHECK_MODULES[assignment].values())


def draw_challenges(assignment, seed=None):
    """A fresh secret challenge for every part of the assignment."""
    rng = onp.random.default_rng(seed)
    return {name: part.challenge(rng) for name, part in all_parts(assignment).items()}


# Cells the grader does not run: training that needs the real data, and demonstrations of
# finished code that no graded part depends on (tagged in the source notebook).
SKIPPED_TAGS = {"skip-execution", "demo"}
SKIPPED_CELLS = {course.SETUP_CELL_ID, course.SELF_CHECK_CELL_ID}  # Colab setup and the student's self-check


def job(nb, assignment, calls, challenges, limits):
    """The worker's job for a submission (a notebook shaped like the release)."""
    cells = []
    for index, cell in enumerate(nb.cells):
        grade_id = _nbgrader(cell).get("grade_id")
        if _nbgrader(cell).get("grade") and grade_id in calls:
            cells.append({"index": index, "kind": "probe", "calls": calls[grade_id]})
        elif (cell.cell_type == "code" and not SKIPPED_TAGS & set(cell.metadata.get("tags", []))
              and cell.get("id") not in SKIPPED_CELLS):
            cells.append({"index": index, "kind": "code", "source": cell.source})
    return {"observer_modules": course.OBSERVER_MODULES[assignment], "cells": cells,
            "challenges": challenges, "limits": asdict(limits)}


STOPPED = {"timeout": "the notebook ran out of time before reaching this cell",
           "too much output": "the notebook produced too much output and was stopped before this cell",
           "too many files": "the notebook created too many files and was stopped before this cell",
           "too much shared memory": "the notebook used more shared memory than its cap and was stopped "
                                     "before this cell",
           "too many semaphores": "the notebook created too many semaphores and was stopped before this cell",
           "worker died": "the notebook's process was killed before reaching this cell",
           "grading process killed": "the notebook killed the process that grades it and was stopped "
                                     "before this cell",
           "forged": "the notebook wrote its own results into the grader's channel and was stopped before "
                     "this cell",
           "invalid output": "the notebook wrote data the grader does not accept into its channel and was "
                             "stopped before this cell",
           "worker stopped": "the process grading this notebook broke the grading protocol and was replaced "
                             "before this cell"}
FORGED = ("the notebook wrote its own results into the grader's channel for this part (no points; "
          "the results a notebook records come from the grader's observers only)")


def _note(outcome):
    """Why the notebook stopped, for the student and the instructor; None when it ran to its end."""
    if outcome.reason:
        key, _, detail = outcome.reason.partition(": ")
        if key not in STOPPED:
            return outcome.reason
        return STOPPED[key] + (f" ({detail})" if detail else "")
    if outcome.exit not in (0, None):
        return f"the notebook's process ended with status {outcome.exit} (memory or CPU limit?)"
    return None


def verdicts(nb, assignment, job_, outcome):
    """{"cells": {grade_id: {"passed", "messages"}}, "outputs": {index: record}, "note": str or None}.

    A (cell, part) the worker reports as forged, or with more than one record, fails whatever
    its records say: only the observer writes a part's result, and it writes it once."""
    parts = all_parts(assignment)
    by_position = {i: cell["index"] for i, cell in enumerate(job_["cells"])}
    observations, outputs, counts = {}, {}, {}
    for record in outcome.records:
        if not isinstance(record, dict) or not isinstance(record.get("cell"), int):
            continue
        index = by_position.get(record["cell"])
        if index is None:
            continue
        if "part" in record:
            key = (index, str(record["part"]))
            counts[key] = counts.get(key, 0) + 1
            observations.setdefault(key, record.get("observation"))
        else:
            outputs[index] = record
    forged = {key for key, count in counts.items() if count > 1}
    forged |= {(by_position[cell], str(part)) for cell, part in outcome.forged if cell in by_position}
    note = _note(outcome)
    cells = {}
    for position, cell in enumerate(job_["cells"]):
        if cell["kind"] != "probe":
            continue
        grade_id = _nbgrader(nb.cells[cell["index"]])["grade_id"]
        messages = []
        for part_name, _ in cell["calls"]:
            key = (cell["index"], part_name)
            if key in forged:
                messages.append(f"failed: {parts[part_name].description}: {FORGED}.")
                continue
            if key not in observations:
                messages.append(f"{parts[part_name].description}: not graded, {note or 'no result was recorded'}.")
                continue
            verdict = judge_safely(parts[part_name], job_["challenges"][part_name], observations[key])
            if verdict is not None:
                messages.append(verdict)
        cells[grade_id] = {"passed": not messages,
                           "messages": messages or [f"passed: {parts[p].description}" for p, _ in cell["calls"]]}
    return {"cells": cells, "outputs": {str(k): v for k, v in outputs.items()}, "note": note}
