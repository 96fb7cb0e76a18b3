"""The bottleneck notebook's checks, run directly on the bundled sample answers.

Each sample's answers are executed in one namespace after the notebook's own
setup and helper cells, as in a kernel; then every graded test cell of the
source notebook (hidden part included) is executed there. Correct answers,
however written, must pass every cell; each typical mistake must fail exactly
the cells listed below, so the other parts keep their marks. The real
nbgrader round trip is tested elsewhere (test_grading.py).

The parts are also run as the batch grader runs them: observed with a
secret challenge drawn from a random generator, judged from the challenge
and the JSON observation alone. Correct answers pass, the mistakes fail the
same parts as in the notebook, a recorded observation replayed against
another secret challenge (or the notebook's fixed one) fails every graded
part, and judges given malformed observations raise nothing but
CheckFailed. Last, what the sandbox imports for this notebook (the worker,
the student runtime and the observers) loads nothing of the judges' side.
"""
import ast
import contextlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as onp
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from autograder import course  # noqa: E402
from autograder.sandboxed.observers import bottleneck as observers  # noqa: E402
from autograder.student.checks import bottleneck as checks  # noqa: E402
from autograder.grade.hidden import bottleneck as hidden_checks  # noqa: E402
from autograder.student.checking import CheckFailed, quiet_stderr  # noqa: E402
from autograder.grade.hidden import numpy_ops as ref  # noqa: E402
from autograder.student.parts import canonical, close, judge_safely  # noqa: E402
from autograder.assign.samples import read_answers  # noqa: E402

ALL_PARTS = {**checks.PARTS, **hidden_checks.PARTS}  # visible and hidden parts, by name

os.environ.setdefault("MPLBACKEND", "Agg")

SOURCE = ROOT / "source" / "bottleneck" / "bottleneck.ipynb"
SAMPLES = ROOT / "samples" / "bottleneck"
HELPER_CELLS = ("setup", "count_helper", "evaluate_helper")
SOLUTION_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)

GRADE_CELLS = ["bottleneck_visible", "bottleneck_shapes", "bottleneck_structure", "bottleneck_behaviour",
               "small_resnet_visible", "small_resnet_assembly", "small_resnet_behaviour",
               "small_resnet_counts", "train_adam_visible", "train_adam_hidden", "train_adam_steps"]
BOTTLENECK_CELLS = GRADE_CELLS[:4]
# grade cells each sample fails; every other grade cell must pass.
EXPECTED_FAILURES = {
    "correct_reference": set(),
    "correct_styled": set(),
    "correct_tuples": set(),
    "blank": set(GRADE_CELLS),
    "relu_before_add": {"bottleneck_behaviour"},
    "missing_projection_stride": {"bottleneck_visible", "bottleneck_shapes", "bottleneck_structure"},
    "no_expansion": set(BOTTLENECK_CELLS),
    "first_block_identity": {"small_resnet_assembly", "small_resnet_counts"},
    "never_initialises": {"train_adam_steps"},
    "per_batch_mean": {"train_adam_steps"},
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
    ("never_initialises", "train_adam_steps", "initialise it first"),
    ("per_batch_mean", "train_adam_steps", "the mean of the batches' means"),
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
    "default_without_projection": ("bottleneck", "strides=1, use_projection=True, **kwargs",
                                   "strides=1, use_projection=False, **kwargs",
                                   "bottleneck_structure", "(the defaults: strides=1, use_projection=True)"),
    "imagenet_stem": ("small_resnet", "nn.Conv2D(64, kernel_size=3, strides=1, padding=1)",
                      "nn.Conv2D(64, kernel_size=7, strides=2, padding=3)",
                      "small_resnet_assembly", "3x3 with 64 output channels"),
    "stem_relu_first": ("small_resnet", "nn.BatchNorm(), nn.Activation('relu'),",
                        "nn.Activation('relu'), nn.BatchNorm(),",
                        "small_resnet_behaviour", "ReLU before BatchNorm"),
    "sgd": ("train_adam", "'adam'", "'sgd'", "train_adam_hidden", "every parameter should have moved"),
    "validation_on_train": ("train_adam", "evaluate(net, test_iter, device)", "evaluate(net, train_iter, device)",
                            "train_adam_visible", "measure it on test_iter"),
    "no_force_reinit": ("train_adam", "force_reinit=True", "force_reinit=False",
                        "train_adam_steps", "Without force_reinit=True"),
    "default_initializer": ("train_adam", "init.Xavier(), ", "",
                            "train_adam_steps", "not initialised with init.Xavier()"),
    "loss_sum_per_batch": ("train_adam", "history['train_loss'].append(total_loss / count)",
                           "history['train_loss'].append(total_loss / len(train_iter))",
                           "train_adam_steps", "divided by the number of batches"),
    "accuracy_of_last_batch": ("train_adam", "history['train_acc'].append(correct / count)",
                               "history['train_acc'].append(float((y_hat.argmax(axis=1).astype(y.dtype) == y)"
                               ".mean()))", "train_adam_steps", "train_acc"),
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
    for sample in ("correct_reference", "correct_styled", "correct_tuples"):
        checks.preact_self_check(namespace(sample)["PreActBottleneck"])
        assert "passed" in capsys.readouterr().out
    space = namespace("correct_reference")
    code = read_answers(SAMPLES / "correct_reference.py")["preact_bottleneck"]
    exec(code.replace("return Y + shortcut", "return npx.relu(Y + shortcut)"), space)
    with pytest.raises(CheckFailed, match="no ReLU after the addition"):
        checks.preact_self_check(space["PreActBottleneck"])


def preact_outputs(x, seed, c_in, c, proj):
    """Plain NumPy: the accepted outputs of PreActBottleneck (stride 1), then those of usual mistakes."""
    out = checks.EXPANSION * c
    conv = hidden_checks.canonical_conv(seed, {})
    R = lambda z: conv((c, c_in, 1, 1), z)
    M = lambda z: conv((c, c, 3, 3), z, pad=1)
    E = lambda z: conv((out, c, 1, 1), z)
    B = lambda n: hidden_checks.canonical_bn(seed, n)
    r = ref.relu
    pre = r(B(c_in)(x))
    main = E(r(B(c)(M(r(B(c)(R(pre)))))))
    if proj:
        right = [(None, main + conv((out, c_in, 1, 1), pre)), (None, main + conv((out, c_in, 1, 1), x))]
    else:
        right = [(None, main + x)]
    return right + [(checks.NO_FINAL_RELU, r(right[0][1])), (checks.NO_SHORTCUT, main)]


def test_preact_fingerprints_are_those_of_the_numpy_reference():
    """The self-check's stored fingerprints follow from a plain-NumPy pre-activation block."""
    assert len(checks.PREACT_FINGERPRINTS) == len(checks.PREACT_CASES)
    for (c, proj, c_in, side), stored in zip(checks.PREACT_CASES, checks.PREACT_FINGERPRINTS):
        x = canonical(checks.PREACT_SEED, "input", (2, c_in, side, side))
        outputs = preact_outputs(x, checks.PREACT_SEED, c_in, c, proj)
        assert [m for m, _ in stored] == [m for m, _ in outputs]
        for (_, want), (_, output) in zip(stored, outputs):
            assert close(checks.fingerprint(output), want)


def test_reference_block_counts():
    """The published counts follow from the per-block formula."""
    stem = 27 * 64 + 64 + 4 * 64
    blocks = [hidden_checks.bottleneck_counts(c_in, c, proj) for c_in, (c, _, proj)
              in zip([64, 256, 256, 512], hidden_checks.SMALL_RESNET_UNITS)]
    total = stem + sum(b[0] for b in blocks) + 512 * 10 + 10
    frozen = 2 * 64 + sum(b[2] for b in blocks)
    assert (total, total - frozen, frozen) == hidden_checks.SMALL_RESNET_COUNTS


# ------------------------------------------------- parts under secret challenges

# The object each part observes, and the grade cell (None: ungraded) that calls it.
PARTS = {
    "bottleneck_demo_shapes": ("Bottleneck", "bottleneck_visible"),
    "bottleneck_shapes": ("Bottleneck", "bottleneck_shapes"),
    "bottleneck_structure": ("Bottleneck", "bottleneck_structure"),
    "bottleneck_behaviour": ("Bottleneck", "bottleneck_behaviour"),
    "small_resnet_demo": ("small_resnet", "small_resnet_visible"),
    "small_resnet_assembly": ("small_resnet", "small_resnet_assembly"),
    "small_resnet_behaviour": ("small_resnet", "small_resnet_behaviour"),
    "small_resnet_counts": ("small_resnet", "small_resnet_counts"),
    "train_adam_history": ("train_adam", "train_adam_visible"),
    "train_adam_behaviour": ("train_adam", "train_adam_hidden"),
    "train_adam_steps": ("train_adam", "train_adam_steps"),
    "preact_self_check": ("PreActBottleneck", None),
}
# Every graded part's observation depends on its secret challenge: a recorded
# observation must not pass another secret challenge.
GRADED = sorted(name for name, (_, cell) in PARTS.items() if cell)
SECRET, OTHER = 20261123, 777


def observe(part, obj, challenge):
    """As the sandboxed worker does: the student's side, JSON out (or the error it raised)."""
    with quiet_stderr(), contextlib.redirect_stdout(io.StringIO()):
        try:
            observation = part.observe(obj, challenge)
        except CheckFailed as failure:
            return {"failed": str(failure)}
        except Exception as error:
            return {"error": type(error).__name__}
    return json.loads(json.dumps(observation))


def secret_run(space, rng_seed):
    """{part: (challenge, observation, CPU seconds)} with challenges drawn as the batch grader draws them."""
    rng = onp.random.default_rng(rng_seed)
    runs = {}
    for name, part in ALL_PARTS.items():
        challenge = part.challenge(rng)
        start = time.process_time()
        observation = observe(part, space[PARTS[name][0]], challenge)
        runs[name] = (challenge, observation, time.process_time() - start)
    return runs


@pytest.fixture(scope="module")
def secret():
    return {sample: secret_run(namespace(sample), SECRET) for sample in EXPECTED_FAILURES}


def test_parts_are_the_notebooks_checks():
    called = set()
    for cell in CELLS.values():
        for node in ast.walk(ast.parse(cell.source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("check", "hidden")):
                called.add((node.func.attr, node.args[0].id))
                grade = cell.metadata["nbgrader"].get("grade_id") if cell.metadata["nbgrader"]["grade"] else None
                assert PARTS[node.func.attr] == (node.args[0].id, grade)
    assert {name for name, _ in called} == set(ALL_PARTS) == set(PARTS)
    for name, part in ALL_PARTS.items():
        module = checks if name in checks.PARTS else hidden_checks
        assert getattr(module, name) == part.check


def test_fixed_challenge_is_fixed_and_secret_ones_differ():
    for name, part in ALL_PARTS.items():
        assert part.challenge(None) == part.challenge(None)
        json.dumps(part.challenge(onp.random.default_rng(1)))
        if name in GRADED:
            assert part.challenge(onp.random.default_rng(1)) != part.challenge(onp.random.default_rng(2)), name
            assert part.challenge(onp.random.default_rng(1)) != part.challenge(None), name
        else:  # the ungraded self-check is judged on its fixed challenge only
            assert part.challenge(onp.random.default_rng(1)) == part.challenge(None), name


@pytest.mark.parametrize("sample", sorted(EXPECTED_FAILURES))
def test_secret_challenges_grade_samples_as_the_notebook_does(secret, sample):
    failed = {PARTS[name][1]: verdict for name, (challenge, observation, _) in secret[sample].items()
              for verdict in [judge_safely(ALL_PARTS[name], challenge, observation)]
              if verdict is not None and PARTS[name][1]}
    assert set(failed) == EXPECTED_FAILURES[sample], failed


@pytest.mark.parametrize("sample", ["correct_reference", "correct_styled", "correct_tuples"])
def test_correct_answers_pass_every_secret_challenge_quickly_with_small_observations(secret, sample):
    for name, (challenge, observation, seconds) in secret[sample].items():
        assert judge_safely(ALL_PARTS[name], challenge, observation) is None, name
        assert len(json.dumps(observation)) < 1_000_000, name
        assert seconds < 5, (name, seconds)


@pytest.fixture(scope="module")
def fixed_run():
    """{part: (challenge, observation)} of a correct answer on the notebook's fixed challenges."""
    space = namespace("correct_reference")
    return {name: (part.challenge(None), observe(part, space[PARTS[name][0]], part.challenge(None)))
            for name, part in ALL_PARTS.items()}


@pytest.mark.parametrize("name", GRADED)
def test_replayed_observations_fail_another_secret_challenge(secret, fixed_run, name):
    """Records of a correct run under another draw, or of the notebook's fixed challenge, earn nothing."""
    part = ALL_PARTS[name]
    other = part.challenge(onp.random.default_rng(OTHER))
    assert judge_safely(part, *fixed_run[name]) is None, name
    assert judge_safely(part, other, fixed_run[name][1]) is not None, name
    for sample in ("correct_reference", "correct_styled"):
        _, observation, _ = secret[sample][name]
        assert judge_safely(part, other, observation) is not None, (sample, name)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_single_mistakes_fail_only_their_exercise_under_secret_challenges(variant):
    section, old, new, cell, words = VARIANTS[variant]
    space = namespace("correct_reference")
    exec(read_answers(SAMPLES / "correct_reference.py")[section].replace(old, new), space)
    failed = {PARTS[name][1]: verdict for name, (challenge, observation, _) in secret_run(space, OTHER).items()
              for verdict in [judge_safely(ALL_PARTS[name], challenge, observation)]
              if verdict is not None and PARTS[name][1]}
    assert cell in failed and words in failed[cell], failed
    assert all(g.startswith(section) for g in failed), failed


def _mutations(value, rng, path=()):
    """(path, replacement) pairs: each node of the observation swapped for junk or dropped."""
    junk = [None, "x", -1, 1e308, float("nan"), True, [], {}, [[1, 2], [3]], {"error": 1}]
    yield path, junk[int(rng.integers(len(junk)))]
    if isinstance(value, dict):
        for key, child in value.items():
            yield path + (key,), "DROP"
            yield from _mutations(child, rng, path + (key,))
    elif isinstance(value, list) and value:
        yield path, value[:-1]
        for index in sorted({0, len(value) - 1}):
            yield from _mutations(value[index], rng, path + (index,))


def _mutated(observation, path, replacement):
    if not path:
        return replacement
    copy = json.loads(json.dumps(observation))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if replacement == "DROP":
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    return copy


@pytest.mark.parametrize("name", sorted(PARTS))
def test_judges_raise_only_check_failed_on_malformed_observations(secret, name):
    part = ALL_PARTS[name]
    rng = onp.random.default_rng(5)
    challenge, observation, _ = secret["correct_reference"][name]
    mutations = list(_mutations(observation, rng))
    picked = [mutations[int(i)] for i in rng.permutation(len(mutations))[:40]]
    for bad in [None, [], "junk", {}, {"outputs": "junk"}] + [_mutated(observation, *m) for m in picked]:
        try:
            part.judge(challenge, bad)
        except CheckFailed:
            pass


# ------------------------------------------------------- the sandbox's side

def test_observers_load_nothing_judge_side():
    """What the sandbox imports for this notebook loads no judge, reference or authoring module."""
    import subprocess
    modules = ["autograder.sandboxed.worker", *course.OBSERVER_MODULES["bottleneck"]]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('autograder.grade', 'autograder.assign'))))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert found.stdout.strip() == "[]", found.stdout


def test_hidden_parts_observe_with_the_public_observers():
    assert set(observers.OBSERVERS) == set(hidden_checks.PARTS)
    for name, part in hidden_checks.PARTS.items():
        assert part.observe == observers.OBSERVERS[name], name
