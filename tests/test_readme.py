"""The README tells the truth: its points table matches the notebooks, its commands exist."""
import re

from autograder import course

README = (course.ROOT / "README.md").read_text()


def test_points_table_matches_the_notebooks():
    rows = re.findall(r"^\| (\w+) \| (\w+) \| .* \| (\d+) \|$", README, re.M)
    table = {}
    for assignment, part, points in rows:
        table.setdefault(assignment, {})[part] = int(points)
    assert table == {a: course.max_scores(a) for a in course.assignments()}


def test_quick_start_commands_exist():
    for command in re.findall(r"^\./(\S+)", README, re.M):
        assert (course.ROOT / command).exists(), command
    ci = (course.ROOT / ".ci" / "run").read_text()
    assert "./test.sh" in ci
