"""nbgrader settings for this course; the repository root is the course directory.

Instructors can run plain nbgrader commands from the repository root
(``nbgrader generate_assignment resnet18``, ``nbgrader autograde resnet18``);
the course's own commands (``python -m autograder ...``) use this file too.
"""
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades

from autograder.grade.feedback import ClearHiddenTestsInTestCells, ShortTracebacks

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "resnet"

# A cold `import mxnet` takes about 8 s on a slow machine; the longest test
# cell (the whole ResNet-18 at two input sizes) a few seconds more.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Feedback shows which parts failed and why, never the hidden test code:
# hidden regions are removed (from the test cells only: a student's own code may
# contain the marker text) and tracebacks cut to the final message.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTestsInTestCells, ShortTracebacks,
                                    CSSHTMLHeaderPreprocessor]
c.ClearHiddenTests.enforce_metadata = False

# The batch grader (`python -m autograder grade`) runs and judges submissions
# in its sandbox, then lets nbgrader score its verdicts instead of executing
# student code in nbgrader's own process. Plain `nbgrader autograde` is unchanged.
import os  # noqa: E402

if os.environ.get("RESNET_VERDICTS"):
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    from autograder.grade.verdicts import ApplyVerdicts

    # (nbgrader's sanitize step has already checked the cell metadata.)
    c.Autograde.autograde_preprocessors = [ApplyVerdicts, SaveAutoGrades, AssignLatePenalties]
