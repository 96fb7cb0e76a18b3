"""The bottleneck notebook's checks, run directly on the bundled sample answers.

Each sample's answers are executed in one namespace after the notebook's own
setup and helper cells, as in a kernel; then every graded test cell of the
source notebook (hidden part included) is executed there. Correct answers,
however written, must pass every cell; each typical mistake must fail exactly
the cells listed below, so the other parts keep their marks. The real
nbgrader round trip is tested elsewhere (test_grading.py).
"""
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from autograder import bottleneck_checks as checks  # noqa: E402
from autograder.checking import CheckFailed  # noqa: E402
from autograder.samples import read_answers  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")

SOURCE = ROOT / "source" / "bottleneck" / "bottleneck.ipynb"
SAMPLES = ROOT / "samples" / "bottleneck"
HELPER_CELLS = ("setup", "count_helper", "evaluate_helper")
SOLUTION_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)

GRADE_CELLS = ["bottleneck_visible", "bottleneck_shapes", "bottleneck_structure", "bottleneck_behaviour",
               "small_resnet_visible", "small_resnet_assembly", "small_resnet_behaviour",
               "small_resnet_counts", "train_adam_visible", "train_adam_hidden"]
BOTTLENECK_CELLS = GRADE_CELLS[:4]
# grade cells each sample fails; every other grade cell must pass.
EXPECTED_FAILURES = {
    "correct_reference": set(),
    "correct_styled": set(),
    "blank": set(GRADE_CELLS),
    "relu_before_add": {"bottleneck_behaviour"},
    "missing_projection_stride": {"bottleneck_visible", "bottleneck_shapes", "bottleneck_structure"},
    "no_expansion": set(BOTTLENECK_CELLS),
    "first_block_identity": {"small_resnet_assembly", "small_resnet_counts"},
}


def _cells():
    nb = nbformat.read(SOURCE, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.cell_type == "code"}


CELLS = _cells()


def released(code):
    """A solution cell as nbgrader releases it: the solution replaced by a stub."""
    return SOLUTION_BLOCK.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()",
                              code)


def namespace(sample):
    space = {}
    for grade_id in HELPER_CELLS:
        exec(CELLS[grade_id].source, space)
    answers = read_answers(SAMPLES / f"{sample}.py")
    solutions = [g for g, c in CELLS.items() if c.metadata["nbgrader"]["solution"]]
    assert set(answers) <= set(solutions), f"{sample} answers unknown cells {set(answers) - set(solutions)}"
    for grade_id in solutions:
        exec(answers.get(grade_id, released(CELLS[grade_id].source)), space)
    return space


def failing_cells(space):
    """{grade cell: message} of the graded test cells that fail in ``space``."""
    failed = {}
    for grade_id in GRADE_CELLS:
        try:
            exec(CELLS[grade_id].source, space)
        except CheckFailed as error:
            failed[grade_id] = str(error)
    return failed


@pytest.fixture(scope="module")
def results():
    return {sample: failing_cells(namespace(sample)) for sample in EXPECTED_FAILURES}


def test_points_add_up_to_100():
    graded = {g: c.metadata["nbgrader"]["points"] for g, c in CELLS.items() if c.metadata["nbgrader"]["grade"]}
    assert set(graded) == set(GRADE_CELLS)
    assert sum(graded.values()) == 100


def test_every_sample_is_listed():
    assert {p.stem for p in SAMPLES.glob("*.py")} == set(EXPECTED_FAILURES)


@pytest.mark.parametrize("sample", sorted(EXPECTED_FAILURES))
def test_sample_fails_exactly_the_expected_cells(results, sample):
    assert set(results[sample]) == EXPECTED_FAILURES[sample], results[sample]


@pytest.mark.parametrize("sample, cell, words", [
    ("relu_before_add", "bottleneck_behaviour", "before the shortcut is added"),
    ("missing_projection_stride", "bottleneck_structure", "must use strides=2"),
    ("missing_projection_stride", "bottleneck_visible", "raised"),
    ("no_expansion", "bottleneck_structure", "4 * num_channels"),
    ("no_expansion", "bottleneck_visible", "expected (2, 16, 8, 8)"),
    ("first_block_identity", "small_resnet_assembly", "Bottleneck(64, strides=1, use_projection=False)"),
    ("first_block_identity", "small_resnet_counts", "use_projection and strides"),
    ("blank", "bottleneck_visible", "NotImplementedError"),
])
def test_failures_explain_the_mistake(results, sample, cell, words):
    assert words in results[sample][cell]


# Variants of the reference answer, each wrong in one way: (section, old, new, check, words).
VARIANTS = {
    "no_final_relu": ("bottleneck", "return npx.relu(Y + shortcut)", "return Y + shortcut",
                      "bottleneck_behaviour", "the final ReLU is missing"),
    "no_shortcut": ("bottleneck", "return npx.relu(Y + shortcut)", "return npx.relu(Y)",
                    "bottleneck_behaviour", "the shortcut is not added"),
    "missing_middle_relu": ("bottleneck", "Y = npx.relu(self.bn2(self.conv2(Y)))", "Y = self.bn2(self.conv2(Y))",
                            "bottleneck_behaviour", "no ReLU after the second BatchNorm"),
    "relu_before_bn": ("bottleneck", "Y = npx.relu(self.bn1(self.conv1(X)))\n        Y = npx.relu(self.bn2(self.conv2(Y)))",
                       "Y = self.bn1(npx.relu(self.conv1(X)))\n        Y = self.bn2(npx.relu(self.conv2(Y)))",
                       "bottleneck_behaviour", "ReLU comes before BatchNorm"),
    "bn_on_projection": ("bottleneck", "shortcut = X if self.projection is None else self.projection(X)",
                         "shortcut = X if self.projection is None else self.bn3(self.projection(X))",
                         "bottleneck_behaviour", "BatchNorm is applied to the projection"),
    "stride_on_3x3": ("bottleneck", "self.conv1 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)\n"
                      "        self.bn1 = nn.BatchNorm()\n        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)",
                      "self.conv1 = nn.Conv2D(num_channels, kernel_size=1)\n        self.bn1 = nn.BatchNorm()\n"
                      "        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=strides)",
                      "bottleneck_structure", "stride belongs to the first 1x1"),
    "no_bias": ("bottleneck", "nn.Conv2D(num_channels, kernel_size=3, padding=1)",
                "nn.Conv2D(num_channels, kernel_size=3, padding=1, use_bias=False)",
                "bottleneck_structure", "Keep Gluon's defaults"),
    "imagenet_stem": ("small_resnet", "nn.Conv2D(64, kernel_size=3, strides=1, padding=1)",
                      "nn.Conv2D(64, kernel_size=7, strides=2, padding=3)",
                      "small_resnet_assembly", "3x3 with 64 output channels"),
    "stem_relu_first": ("small_resnet", "nn.BatchNorm(), nn.Activation('relu'),",
                        "nn.Activation('relu'), nn.BatchNorm(),",
                        "small_resnet_behaviour", "ReLU before BatchNorm"),
    "sgd": ("train_adam", "'adam'", "'sgd'", "train_adam_hidden", "every parameter should have moved"),
    "validation_on_train": ("train_adam", "evaluate(net, test_iter, device)", "evaluate(net, train_iter, device)",
                            "train_adam_hidden", "measure it on test_iter"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_single_mistakes_fail_only_their_exercise(variant):
    section, old, new, cell, words = VARIANTS[variant]
    space = namespace("correct_reference")
    code = read_answers(SAMPLES / "correct_reference.py")[section]
    assert old in code, variant
    exec(code.replace(old, new), space)
    failed = failing_cells(space)
    assert cell in failed and words in failed[cell], failed
    prefix = {"bottleneck": "bottleneck_", "small_resnet": "small_resnet_", "train_adam": "train_adam_"}[section]
    assert all(g.startswith(prefix) for g in failed), failed


def test_preact_self_check(capsys):
    checks.preact_self_check(namespace("blank")["PreActBottleneck"])
    assert "not attempted" in capsys.readouterr().out
    for sample in ("correct_reference", "correct_styled"):
        checks.preact_self_check(namespace(sample)["PreActBottleneck"])
        assert "passed" in capsys.readouterr().out
    space = namespace("correct_reference")
    code = read_answers(SAMPLES / "correct_reference.py")["preact_bottleneck"]
    exec(code.replace("return Y + shortcut", "return npx.relu(Y + shortcut)"), space)
    with pytest.raises(CheckFailed, match="no ReLU after the addition"):
        checks.preact_self_check(space["PreActBottleneck"])


def test_reference_block_counts():
    """The published counts follow from the per-block formula."""
    stem = 27 * 64 + 64 + 4 * 64
    blocks = [checks.bottleneck_counts(c_in, c, proj) for c_in, (c, _, proj)
              in zip([64, 256, 256, 512], checks.SMALL_RESNET_UNITS)]
    total = stem + sum(b[0] for b in blocks) + 512 * 10 + 10
    frozen = 2 * 64 + sum(b[2] for b in blocks)
    assert (total, total - frozen, frozen) == checks.SMALL_RESNET_COUNTS
