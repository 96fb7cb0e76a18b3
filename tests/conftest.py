"""Shared fixtures: one real nbgrader run over the bundled samples for the whole session."""
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def graded_samples(tmp_path_factory):
    """(course_dir, {assignment: {student: {part: score}}}) from grading samples/ with nbgrader."""
    from autograder.assign.demo import grade_samples
    return grade_samples(tmp_path_factory.mktemp("course") / "course")
