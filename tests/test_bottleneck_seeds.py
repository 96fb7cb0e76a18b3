"""A verdict depends on the code, never on the draw: the bottleneck samples under 8 secret seeds.

Every sample of ``samples/bottleneck`` (correct ones, the blank and every
mistake) is made into a notebook, run in the sandbox pool as the batch
grader runs it, and judged against challenges drawn from 8 different seeds
(``trusted.draw_challenges``). Every seed must give every sample the same
per-part scores, and those are the scores ``expected_scores.json`` lists
(which tests/test_grading.py checks through nbgrader). About 80 notebooks on
two workers: under two minutes. Every draw holds the same cases by construction
(see the hidden modules), so more seeds would repeat them with other values.
"""
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from autograder import course
from autograder.assign.samples import fill, read_answers, samples
from autograder.grade import trusted
from autograder.grade.sandbox.pool import Limits, Pool, bwrap_available

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is needed for sandboxed grading")
ASSIGNMENT = "bottleneck"
SEEDS = range(1, 9)
LIMITS = Limits(wall_seconds=120, cpu_seconds=120, memory_bytes=3 << 30)


def cell_points():
    nb = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def part_scores(verdict, points):
    """{part: points} from a verdict's graded cells, as nbgrader would score them."""
    return {part: sum(points[g] for g in ids if verdict["cells"][g]["passed"])
            for part, ids in course.parts_of(course.source_notebook(ASSIGNMENT))}


@pytest.fixture(scope="module")
def scores_by_seed():
    """{sample: {seed: {part: points}}}, every sample graded under every seed."""
    release = nbformat.read(course.RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    notebooks = {name: fill(release, read_answers(path)) for name, path in samples(ASSIGNMENT, course.SAMPLES).items()}
    calls, points = trusted.plan(ASSIGNMENT), cell_points()
    challenges = {seed: trusted.draw_challenges(ASSIGNMENT, seed) for seed in SEEDS}

    def grade(name, seed):
        job = trusted.job(notebooks[name], ASSIGNMENT, calls, challenges[seed], LIMITS)
        return name, seed, part_scores(trusted.verdicts(notebooks[name], ASSIGNMENT, job, pool.run(job)), points)

    found = defaultdict(dict)
    with Pool(2, limits=LIMITS) as pool, ThreadPoolExecutor(2) as threads:
        for name, seed, scores in threads.map(lambda work: grade(*work),
                                              [(name, seed) for seed in SEEDS for name in notebooks]):
            found[name][seed] = scores
    return found


def test_draws_differ():
    """The seeds give different secret challenges, for every part."""
    drawn = [trusted.draw_challenges(ASSIGNMENT, seed) for seed in SEEDS]
    for part in drawn[0]:
        if part != "preact_self_check":  # ungraded: judged on its fixed challenge only
            assert len({json.dumps(d[part], sort_keys=True) for d in drawn}) == len(drawn), part


def test_every_sample_scores_the_same_under_every_seed(scores_by_seed):
    expected = json.loads((course.SAMPLES / ASSIGNMENT / "expected_scores.json").read_text())
    assert set(scores_by_seed) == set(expected)
    for name, by_seed in scores_by_seed.items():
        differing = {seed: scores for seed, scores in by_seed.items() if scores != expected[name]}
        assert not differing, (name, expected[name], differing)
