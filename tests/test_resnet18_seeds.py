"""A verdict depends on the code, never on the draw (ResNet-18).

Every sample of ``samples/resnet18`` (correct ones, the blank and every
mistake) is run for real in the sandbox pool under 8 secret draws of the
challenges and judged by the grader's own code: each must get the same
verdict for every part under every draw, and the per-part scores its
``expected_scores.json`` gives (those of plain nbgrader with the notebook's
fixed challenges). A draw that misses a case (say, no stride-2 Residual)
would let a mistake through in some draws only.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import nbformat

from autograder import course
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade import trusted
from autograder.grade.sandbox.pool import Limits, Pool, bwrap_available

ASSIGNMENT = "resnet18"
SEEDS = range(8)


def _points():
    """{grade_id: points} of the graded cells, and [(part, [grade_id, ...])]."""
    nb = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    return points, course.parts_of(course.source_notebook(ASSIGNMENT))


def _failed_parts(calls, cells):
    """{grade_id: sorted names of the parts that did not pass} from the grader's verdicts."""
    parts = trusted.all_parts(ASSIGNMENT)
    failed = {}
    for grade_id, cell in cells.items():
        failed[grade_id] = sorted(
            name for name, _ in calls[grade_id]
            if any(message.startswith((f"failed: {parts[name].description}:",
                                       f"{parts[name].description}: not graded"))
                   for message in cell["messages"]))
    return failed


def test_every_sample_gets_the_same_verdicts_under_every_draw():
    release = nbformat.read(course.RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    calls = trusted.plan(ASSIGNMENT)
    notebooks = {student: fill(release, read_answers(path))
                 for student, path in samples(ASSIGNMENT, course.SAMPLES).items()}
    assert {"correct_reference", "blank", "relu_before_add"} <= set(notebooks)
    limits = Limits()
    runs = [(student, seed, trusted.job(nb, ASSIGNMENT, calls, trusted.draw_challenges(ASSIGNMENT, seed), limits))
            for student, nb in notebooks.items() for seed in SEEDS]
    with Pool(2, sandbox=bwrap_available(), limits=limits) as pool, ThreadPoolExecutor(2) as threads:
        outcomes = list(threads.map(lambda run: pool.run(run[2]), runs))

    points, parts = _points()
    expected = json.loads((course.SAMPLES / ASSIGNMENT / "expected_scores.json").read_text())
    verdicts = {}
    for (student, seed, job), outcome in zip(runs, outcomes):
        assert outcome.reason is None, (student, seed, outcome.reason)
        cells = trusted.verdicts(notebooks[student], ASSIGNMENT, job, outcome)["cells"]
        scores = {part: sum(points[g] for g in ids if cells[g]["passed"]) for part, ids in parts}
        assert scores == expected[student], (student, seed)
        verdicts.setdefault(student, {})[seed] = _failed_parts(calls, cells)
    for student, by_seed in verdicts.items():
        first = by_seed[SEEDS[0]]
        assert all(failed == first for failed in by_seed.values()), student
