"""Feedback that teaches without giving the hidden tests away.

nbgrader's HTML feedback shows full tracebacks, and a traceback prints the
lines of the test cell that raised. With hidden regions removed from the
test cells (ClearHiddenTestsInTestCells), ShortTracebacks also reduces every
error output to its final line (``CheckFailed: <what to fix>``).
"""
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


class ShortTracebacks(Preprocessor):
    """Replace each error output's traceback by its one-line message."""

    enabled = True

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
