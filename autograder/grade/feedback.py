"""Feedback that teaches without giving the hidden tests away.

nbgrader's HTML feedback shows full tracebacks, and a traceback prints the
lines of the test cell that raised. With hidden regions removed by
ClearHiddenTests, this preprocessor also reduces every error output to its
final line (``CheckFailed: <what to fix>``).
"""
from nbconvert.preprocessors import Preprocessor


class ShortTracebacks(Preprocessor):
    """Replace each error output's traceback by its one-line message."""

    enabled = True

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
