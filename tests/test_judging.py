"""Judging processes (``autograder/grade/judging.py``): the grader's verdicts, computed elsewhere.

Each case is judged in the grader's process too, and must come back the
same; a judging process that dies costs nothing but its replacement.
"""
import os
import signal

import nbformat
import pytest

from autograder import course
from autograder.assign.samples import fill, read_answers
from autograder.grade import trusted
from autograder.grade.judging import Judges
from autograder.grade.sandbox.pool import Limits, Outcome


@pytest.fixture(scope="module")
def case():
    """(notebook, job, outcome): a correct notebook whose run recorded a failure for every other part,
    forged one part and stopped before its last cell."""
    release = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    nb = fill(release, read_answers(course.SAMPLES / "resnet18" / "correct_reference.py"))
    job = trusted.job(nb, "resnet18", trusted.plan("resnet18"), trusted.draw_challenges("resnet18", seed=7), Limits())
    probes = [(i, part) for i, cell in enumerate(job["cells"]) if cell["kind"] == "probe" for part, _ in cell["calls"]]
    records = [{"cell": i, "part": part, "observation": {"error": "TypeError (made up for this test)"}}
               for i, part in probes[:-1:2]]
    return nb, job, Outcome(records=records, reason="timeout", forged=[list(probes[1])])


def test_the_judging_processes_give_the_grader_s_verdicts(case, monkeypatch):
    expected = trusted.verdicts(case[0], "resnet18", *case[1:])
    judges = Judges("resnet18", processes=1)
    try:
        assert judges.verdicts(case[0], "resnet18", *case[1:]) == expected
        assert any("failed" in m for cell in expected["cells"].values() for m in cell["messages"])
        monkeypatch.setattr(trusted, "verdicts", lambda *args: pytest.fail("judged in the grader's process"))
        assert judges.verdicts(case[0], "resnet18", *case[1:]) == expected
    finally:
        judges.close()
    assert all(p.poll() is not None for p in judges._started)


def test_a_judging_process_that_dies_is_replaced_and_its_submission_judged_here(case):
    expected = trusted.verdicts(case[0], "resnet18", *case[1:])
    judges = Judges("resnet18", processes=1)
    try:
        first = judges._started[0]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert judges.verdicts(case[0], "resnet18", *case[1:]) == expected
        assert len(judges._started) == 2 and judges._started[1].poll() is None
        assert judges.verdicts(case[0], "resnet18", *case[1:]) == expected  # by the new one
    finally:
        judges.close()
