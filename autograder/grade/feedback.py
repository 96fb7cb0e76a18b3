"""Feedback that teaches without giving the hidden tests away.

nbgrader's HTML feedback shows full tracebacks, and a traceback prints the
lines of the test cell that raised. With hidden regions removed from the
test cells (ClearHiddenTestsInTestCells), ``ShortTracebacks`` reduces every
error output to its final line (``CheckFailed: <what to fix>``).

nbgrader's page then lists one identical "Test cell" link per graded cell
and leaves the decisive message somewhere below, on one line that runs off
the page. ``PartSummary`` puts a table at the top instead: each part of the
assignment, its points, and what the grader said about it (the messages of
its graded cells' outputs, failures first); the course's template
(``templates/resnet_feedback``) hides nbgrader's list and wraps outputs.
"""
import html
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests


class ClearHiddenTestsInTestCells(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, applied to the instructor's test cells only.

    nbgrader looks for its markers in every cell, and a student whose own code
    holds ``BEGIN HIDDEN TESTS`` without its end (in a comment or a string)
    stops the whole feedback page. Hidden tests only live in test cells
    (graded, locked, not answers), whose source nbgrader's autograde restores
    from the gradebook; the students' cells are shown as they wrote them.
    """

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and utils.is_locked(cell) and not utils.is_solution(cell):
            return super().preprocess_cell(cell, resources, index)
        return cell, resources


TEMPLATES = Path(__file__).resolve().parent / "templates"


class ShortTracebacks(Preprocessor):
    """Replace each error output's traceback by its one-line message."""

    enabled = True

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


def _said(cell):
    """(failed, [message]) from a graded cell's outputs as the grader left them."""
    failed, messages = False, []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            failed = True
            messages.append(f"{output.get('evalue', '')}".strip() or output.get("ename", "error"))
        elif output.get("output_type") == "stream" and output.get("name") == "stdout":
            messages += [line for line in output.get("text", "").splitlines() if line.strip()]
    return failed, messages


def summary_rows(nb, parts):
    """[(part, first grade_id, score, points, [message])] for the parts of ``parts`` (see course.parts_of)."""
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells
             if c.metadata.get("nbgrader", {}).get("grade")}
    rows = []
    for part, grade_ids in parts:
        score = points = 0.0
        failures, passes = [], []
        for gid in grade_ids:
            cell = cells.get(gid)
            if cell is None:
                continue
            meta = cell.metadata["nbgrader"]
            score += float(meta.get("score") or 0)
            points += float(meta.get("points") or 0)
            failed, messages = _said(cell)
            (failures if failed or float(meta.get("score") or 0) < float(meta.get("points") or 0)
             else passes).extend(m for m in messages if m not in failures + passes)
        if not failures and not passes:
            failures = ["no result was recorded for this part"] if score < points else []
        rows.append((part, grade_ids[0], score, points, failures or passes))
    return rows


class PartSummary(Preprocessor):
    """Insert the per-part summary as the notebook's first cell (after GetGrades has set the scores)."""

    enabled = True

    def preprocess(self, nb, resources):
        from .. import course
        assignment = resources["nbgrader"]["assignment"]
        if assignment not in course.ASSIGNMENTS:
            return nb, resources
        lines = ['<table class="part-summary">',
                 "<tr><th>part</th><th>points</th><th>what the grader found</th></tr>"]
        for part, anchor, score, points, messages in summary_rows(nb, course.parts_of(course.source_notebook(assignment))):
            state = "full" if score >= points else "partial" if score > 0 else "none"
            text = "\n".join(html.escape(m) for m in messages)
            lines.append(f'<tr class="{state}"><td><a href="#{html.escape(anchor)}">{html.escape(part)}</a></td>'
                         f'<td class="points">{score:g} / {points:g}</td><td class="message">{text}</td></tr>')
        lines.append("</table>")
        cell = nbformat.v4.new_markdown_cell("### Your results, part by part\n\n" + "\n".join(lines))
        cell.metadata["resnet_part_summary"] = True
        nb.cells.insert(0, cell)
        return nb, resources
