"""Grading real notebooks with real nbgrader: the bundled samples get exactly their expected scores."""
import csv
import html
import json
import re

import pytest

from autograder import course
from autograder.assign.demo import grade_samples
from autograder.assign.samples import samples

GRADED = [a for a in course.assignments() if samples(a, course.SAMPLES)]


def expected(assignment):
    return json.loads((course.SAMPLES / assignment / "expected_scores.json").read_text())


@pytest.mark.parametrize("assignment", GRADED)
def test_every_sample_gets_its_exact_per_part_scores(graded_samples, assignment):
    _, results = graded_samples
    assert results[assignment] == expected(assignment)


@pytest.mark.parametrize("assignment", GRADED)
def test_samples_cover_correct_blank_and_mistakes(assignment):
    maxima = course.max_scores(assignment)
    totals = {s: sum(parts.values()) for s, parts in expected(assignment).items()}
    full = sum(maxima.values())
    assert sum(t == full for t in totals.values()) >= 1
    assert sum(t == 0 for t in totals.values()) >= 1
    assert sum(0 < t < full for t in totals.values()) >= 3
    assert all(set(parts) == set(maxima) for parts in expected(assignment).values())


def test_grades_csv_has_one_row_per_submission_with_its_total(graded_samples):
    course_dir, results = graded_samples
    with open(course_dir / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    got = {(r["assignment"], r["student_id"]): float(r["score"]) for r in rows
           if (r["assignment"], r["student_id"]) in {(a, s) for a in results for s in results[a]}}
    want = {(a, s): float(sum(parts.values())) for a in results for s, parts in results[a].items()}
    assert got == want


def _hidden_lines(assignment):
    """The code lines of the source notebook's hidden test regions."""
    import nbformat
    lines = set()
    for cell in nbformat.read(course.source_notebook(assignment), as_version=4).cells:
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
            lines.update(line.strip() for line in region.splitlines() if line.strip())
    return lines


@pytest.mark.parametrize("assignment", GRADED)
def test_feedback_explains_failures_without_showing_hidden_tests(graded_samples, assignment):
    course_dir, results = graded_samples
    hidden = _hidden_lines(assignment)
    assert hidden
    for student in results[assignment]:
        page = (course_dir / "feedback" / student / assignment / f"{assignment}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert "HIDDEN TESTS" not in text
        shown = [line for line in hidden if line in text]
        assert not shown, f"{student}'s feedback shows hidden test code: {shown}"
    if assignment == "resnet18":
        page = (course_dir / "feedback" / "relu_before_add" / "resnet18" / "resnet18.html").read_text()
        page = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert "add first, then ReLU" in page
        assert "check.residual_demo_shapes" in page  # visible tests stay visible


def test_stderr_from_a_correct_answer_does_not_cost_marks(tmp_path):
    """nbgrader zeroes a test cell that writes to stderr; the checks keep it quiet."""
    _, results = grade_samples(tmp_path / "course", samples_dir=course.ROOT / "tests" / "fixtures" / "noisy",
                               assignments=["resnet18"])
    assert results["resnet18"]["noisy_correct"] == course.max_scores("resnet18")
