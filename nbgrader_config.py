"""nbgrader settings for this course; the repository root is the course directory.

Instructors can run plain nbgrader commands from the repository root
(``nbgrader generate_assignment resnet18 --force``, ``nbgrader autograde resnet18``);
the course's own commands (``python -m autograder ...``) use this file too.
"""
import logging
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
from autograder.grade.page_export import FeedbackPageExporter
from autograder.grade.verdicts import ApplyVerdicts

c = get_config()  # noqa: F821 (provided by nbgrader)


class QuietOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells without its "Attribute 'checksum' ... has changed!" warnings.

    nbgrader warns so for every locked cell of an untouched submission (an open nbgrader bug: the
    checksum it compares with is not the one it stored), and then overwrites those cells from the
    gradebook, checksum included, as it does for every locked cell; the warning says nothing about
    the student. Changes of a cell's type, lock or points are still reported."""

    def report_change(self, name, attr, old, new):
        if attr != "checksum":
            super().report_change(name, attr, old, new)


class OneLineRefusal(logging.Filter):
    """nbgrader logs a notebook it could not grade (refused by RestoreSubmission's CannotGrade, or
    unreadable to nbgrader's own reader) as a 45-line traceback with the reason last, after the line
    naming the submission: the log keeps the reason alone, on one line."""

    def filter(self, record):
        text = record.getMessage()
        if text.startswith("Traceback"):
            last = [line for line in text.splitlines() if line.strip()][-1].strip()
            reason = last.split("CannotGrade: ", 1)[1] if "CannotGrade: " in last else f"could not be read ({last})"
            record.msg, record.args = f"refused: {reason}", ()
        return True


if not any(type(f).__name__ == "OneLineRefusal" for f in logging.getLogger("AutogradeApp").filters):
    logging.getLogger("AutogradeApp").addFilter(OneLineRefusal())  # once, however often this file is read

c.CourseDirectory.course_id = "resnet"
# nbconvert validates the whole notebook against its schema after every preprocessor: a dozen
# times per converter, and about a sixth of recording a student (autograde and feedback). Once,
# after the last one, checks the notebook that is written (nbconvert's own option).
c.Exporter.optimistic_validation = True

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
                                          QuietOverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [TrustedExecute, SaveAutoGrades, AssignLatePenalties]

# Feedback shows which parts failed and why, never the hidden test code: hidden regions are
# removed (from the test cells only: a student's own code may contain the marker text),
# tracebacks cut to the final message, and a per-part summary goes on top
# (autograder/grade/feedback.py, with the course's page template, which wraps long messages).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTestsInTestCells, ShortTracebacks, PartSummary,
                                    CSSHTMLHeaderPreprocessor]
c.ClearHiddenTests.enforce_metadata = False
# nbconvert's HTMLExporter, writing the same pages with its last step (a BeautifulSoup pass over the
# page) done once per distinct cell (autograder/grade/page_export.py).
c.GenerateFeedback.exporter_class = FeedbackPageExporter
c.HTMLExporter.template_name = "resnet_feedback"
c.HTMLExporter.template_file = "page.html.j2"  # extends nbgrader's feedback/index.html.j2
c.HTMLExporter.extra_template_basedirs = [
    str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"), str(TEMPLATES)]
# What a student wrote (Markdown cells, raw HTML cells, rich outputs) is rendered inert, on the
# feedback pages and on any page nbgrader renders with this configuration: no script, style,
# iframe, remote image or javascript: link (see autograder/grade/feedback.py).
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"markdown2html": "autograder.grade.feedback.markdown2html",
                          "clean_html": "autograder.grade.feedback.clean_html"}
