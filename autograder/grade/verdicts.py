"""An nbgrader preprocessor that writes trusted verdicts into the notebook nbgrader autogrades.

The batch grader (``python -m autograder grade``) runs and judges each
submission itself, then calls plain ``nbgrader autograde`` with this
preprocessor in place of nbgrader's Execute: each graded cell gets an output
that says *passed* or a CheckFailed error with the judge's message, and
nbgrader's own SaveAutoGrades scores them into the gradebook. Enabled only
when ``RESNET_VERDICTS`` names the folder of verdict files, so plain
``nbgrader autograde`` is unchanged.
"""
import json
import os
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor


class ApplyVerdicts(Preprocessor):
    enabled = True

    def preprocess(self, nb, resources):
        student = resources["nbgrader"]["student"]
        path = Path(os.environ["RESNET_VERDICTS"]) / f"{student}.json"
        verdict = json.loads(path.read_text())
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
        return nb, resources
