"""nbgrader settings for this course; the repository root is the course directory.

Instructors can run plain nbgrader commands from the repository root
(``nbgrader generate_assignment resnet18 --force``, ``nbgrader autograde resnet18``);
the course's own commands (``python -m autograder ...``) use this file too.
"""
import os
from pathlib import Path

import nbgrader
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput,
                                    DeduplicateIds, GetGrades, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)

from autograder.grade.autograde import RestoreSubmission, TrustedExecute
from autograder.grade.feedback import TEMPLATES, ClearHiddenTestsInTestCells, PartSummary, ShortTracebacks
from autograder.grade.metadata import CheckCellMetadataOnce
from autograder.grade.verdicts import ApplyVerdicts

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "resnet"

# `nbgrader autograde` runs the course's trusted pipeline, the same as the batch grader
# (`python -m autograder grade`), see autograder/grade/autograde.py: the submission is
# restored on the release's skeleton before nbgrader checks its cells, its code runs in the
# sandbox, and the verdicts, judged in nbgrader's process, are what nbgrader scores.
# Sandbox limits: --TrustedExecute.timeout=180 (s), --TrustedExecute.cpu=300 (s),
# --TrustedExecute.memory=4096 (MiB), --TrustedExecute.processes=256, --TrustedExecute.disk=256 (MiB).
if os.environ.get("RESNET_VERDICTS"):
    # The batch grader has restored, run and judged each submission already: its verdict files are
    # applied as they are (the cell positions they name are those of the notebook it submitted).
    # nbgrader's own sanitizing, its metadata check remembering the cells it has passed (metadata.py).
    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
                                          CheckCellMetadataOnce]
    c.Autograde.autograde_preprocessors = [ApplyVerdicts, SaveAutoGrades, AssignLatePenalties]
else:
    c.Autograde.sanitize_preprocessors = [RestoreSubmission, ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [TrustedExecute, SaveAutoGrades, AssignLatePenalties]

# Feedback shows which parts failed and why, never the hidden test code: hidden regions are
# removed (from the test cells only: a student's own code may contain the marker text),
# tracebacks cut to the final message, and a per-part summary goes on top
# (autograder/grade/feedback.py, with the course's page template, which wraps long messages).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTestsInTestCells, ShortTracebacks, PartSummary,
                                    CSSHTMLHeaderPreprocessor]
c.ClearHiddenTests.enforce_metadata = False
c.HTMLExporter.template_name = "resnet_feedback"
c.HTMLExporter.template_file = "page.html.j2"  # extends nbgrader's feedback/index.html.j2
c.HTMLExporter.extra_template_basedirs = [
    str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"), str(TEMPLATES)]
