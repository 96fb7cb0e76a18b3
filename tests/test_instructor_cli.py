"""The instructor's commands say what they do: defaults in --help, progress while the demo grades."""
import subprocess
import sys

from autograder import course
from autograder.assign.demo import _progress


def test_grade_help_shows_the_sandbox_defaults():
    shown = subprocess.run([sys.executable, "-m", "autograder", "grade", "--help"], cwd=course.ROOT,
                           capture_output=True, text=True, check=True).stdout
    shown = " ".join(shown.split())
    for option, default in (("--timeout", "180"), ("--cpu", "300"), ("--memory", "4096")):
        assert f"(default: {default})" in shown.split(option, 2)[2].split("--", 1)[0], option


def test_grade_help_says_one_row_per_student():
    shown = " ".join(subprocess.run([sys.executable, "-m", "autograder", "grade", "--help"], cwd=course.ROOT,
                                    capture_output=True, text=True, check=True).stdout.split())
    assert "grades.csv (one row per student" in shown and "one row per input file of this run" in shown
    assert ".py" not in shown


def test_demo_says_which_sample_nbgrader_is_grading(capsys):
    on_log = _progress("resnet18", ["blank", "correct_reference"], verbose=True)
    on_log("[AutogradeApp | INFO] Sanitizing /c/submitted/blank/resnet18/resnet18.ipynb\n")
    on_log("[AutogradeApp | INFO] Autograding /c/autograded/blank/resnet18/resnet18.ipynb\n")
    on_log("[AutogradeApp | INFO] Autograding /c/autograded/correct_reference/resnet18/resnet18.ipynb\n")
    assert capsys.readouterr().out.splitlines() == ["  resnet18: 1/2 blank", "  resnet18: 2/2 correct_reference"]


def test_nbgrader_export_output_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "grades.csv", "gradebook.db", "grading/x", "demo-output/x"],
                             cwd=course.ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == ["grades.csv", "gradebook.db", "grading/x", "demo-output/x"]
