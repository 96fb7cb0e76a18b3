"""Writing trusted verdicts into the notebook nbgrader autogrades.

Both front doors end here. ``apply_verdict`` gives each graded cell an
output that says *passed* or a CheckFailed error with the judge's message,
and each other code cell the output the sandbox recorded for it; nbgrader's
own SaveAutoGrades then scores the cells into the gradebook.

* The batch grader (``python -m autograder grade``) judges in its own
  process and records with ``nbgrader autograde`` through
  :class:`ApplyVerdicts`, which reads the verdict files named by
  ``RESNET_VERDICTS`` (see nbgrader_config.py and record.py).
* Plain ``nbgrader autograde`` judges each notebook itself with
  ``autograde.TrustedExecute``, which calls ``apply_verdict`` on its result.
"""
import json
import os
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor


def apply_verdict(nb, verdict):
    """Replace every code cell's outputs by what the verdict says about it."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        cell.outputs = []
        if meta.get("grade") and meta.get("grade_id") in verdict["cells"]:
            result = verdict["cells"][meta["grade_id"]]
            if result["passed"]:
                cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                           text="\n".join(result["messages"]) + "\n"))
            else:
                message = "\n".join(result["messages"])
                cell.outputs.append(nbformat.v4.new_output("error", ename="CheckFailed", evalue=message,
                                                           traceback=[f"CheckFailed: {message}"]))
        elif str(index) in verdict["outputs"]:
            record = verdict["outputs"][str(index)]
            if record.get("stdout"):
                cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=record["stdout"]))
            if record.get("error"):
                ename, evalue = record["error"]
                cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                                           traceback=[f"{ename}: {evalue}"]))
    return nb


class ApplyVerdicts(Preprocessor):
    """The batch grader's verdict for this student, read from ``$RESNET_VERDICTS/<student>.json``."""

    enabled = True

    def preprocess(self, nb, resources):
        student = resources["nbgrader"]["student"]
        path = Path(os.environ["RESNET_VERDICTS"]) / f"{student}.json"
        return apply_verdict(nb, json.loads(path.read_text())), resources
