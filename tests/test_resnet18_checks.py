"""The ResNet-18 checks, called directly on sample answers and on typical mistakes.

Grading through nbgrader is tested in test_grading.py; here each check is
shown to pass on correct code written in different styles and to fail, with
the right message, on code that is wrong in one specific way.
"""
import pytest

from autograder.student.checks import resnet18 as checks
from autograder.grade.hidden import resnet18 as hidden_checks
from autograder.student.checking import CheckFailed
from autograder.course import SAMPLES
from autograder.assign.samples import read_answers

ALL_PARTS = {**checks.PARTS, **hidden_checks.PARTS}  # visible and hidden parts, by name

PRELUDE = "from mxnet import autograd, gluon, np, npx\nfrom mxnet.gluon import nn\nnpx.set_np()\n"

CHECKS = [("residual_demo_shapes", "Residual"), ("residual_shapes", "Residual"),
          ("residual_structure", "Residual"), ("residual_behaviour", "Residual"),
          ("stem_shapes", "make_stem"), ("stem_structure", "make_stem"), ("stem_behaviour", "make_stem"),
          ("resnet_block_demo", "resnet_block"), ("resnet_block_units", "resnet_block"),
          ("resnet18_demo", "resnet18"), ("resnet18_assembly", "resnet18"),
          ("resnet18_num_classes", "resnet18"), ("print_layer_shapes_output", "print_layer_shapes"),
          ("parameter_counts_values", "parameter_counts"), ("resnet18_complete", "resnet18")]


def namespace(sample, *patches):
    """Run a sample's answers (then patches) as a notebook would, in one namespace."""
    space = {}
    exec(PRELUDE, space)
    for code in read_answers(SAMPLES / "resnet18" / f"{sample}.py").values():
        exec(code, space)
    for code in patches:
        exec(code, space)
    return space


def failures(space):
    """{check name: message} of the checks that fail."""
    failed = {}
    for check, name in CHECKS:
        try:
            ALL_PARTS[check].check(space[name])
        except CheckFailed as error:
            failed[check] = str(error)
    return failed


CORRECT = ["correct_reference", "correct_styled", "correct_tuples"]


@pytest.mark.parametrize("sample", CORRECT)
def test_correct_answers_pass_every_check(sample):
    assert failures(namespace(sample)) == {}


def test_strides_as_pairs_and_keyword_calls_reach_the_stand_ins():
    """Gluon takes strides=(2, 2) as well as strides=2: the stand-ins must too."""
    patch = """
def resnet_block(num_channels, num_residuals, first_block=False):
    blk = nn.Sequential()
    for i in range(num_residuals):
        down = i == 0 and not first_block
        blk.add(Residual(num_channels=num_channels, use_1x1conv=down, strides=(2, 2) if down else (1, 1)))
    return blk
"""
    assert failures(namespace("correct_reference", patch)) == {}


def test_stages_inside_a_container_of_their_own_are_found():
    patch = """
def resnet18(num_classes=10):
    body = nn.Sequential()
    for channels in (64, 128, 256, 512):
        body.add(resnet_block(channels, 2, first_block=channels == 64))
    net = nn.Sequential()
    net.add(make_stem(), body, nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net
"""
    assert failures(namespace("correct_reference", patch)) == {}


DEFAULTS_AND_STEM = {
    # a different default than the signature asks for costs the exercise whose signature it is
    "residual_structure": """
_Right = Residual
class Residual(_Right):
    def __init__(self, num_channels, use_1x1conv=True, strides=1, **kwargs):
        super().__init__(num_channels, use_1x1conv, strides, **kwargs)
""",
    "resnet_block_units": """
_right_block = resnet_block
def resnet_block(num_channels, num_residuals, first_block=True):
    return _right_block(num_channels, num_residuals, first_block)
""",
    # a network without the stem of make_stem()
    "resnet18_assembly": """
def resnet18(num_classes=10):
    net = nn.Sequential()
    for channels in (64, 128, 256, 512):
        net.add(resnet_block(channels, 2, first_block=channels == 64))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net
""",
}


@pytest.mark.parametrize("part", sorted(DEFAULTS_AND_STEM))
def test_defaults_of_the_signatures_and_the_stem_are_checked_where_they_are_written(part):
    failed = failures(namespace("correct_reference", DEFAULTS_AND_STEM[part]))
    assert part in failed
    assert set(failed) <= {part, "resnet18_complete", "resnet_block_demo"}, failed
    words = {"residual_structure": "(the defaults", "resnet_block_units": "resnet_block(48, 4)",
             "resnet18_assembly": "make_stem()"}[part]
    assert words in failed[part]


def test_missing_biases_cost_the_exercise_that_drops_them_and_the_whole_network():
    failed = failures(namespace("residual_no_bias"))
    assert set(failed) == {"residual_structure", "resnet18_complete"}
    assert "no bias (use_bias=False)" in failed["residual_structure"]
    stem = failures(namespace("correct_reference", """
def make_stem():
    stem = nn.Sequential()
    stem.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3, use_bias=False), nn.BatchNorm(),
             nn.Activation('relu'), nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    return stem
"""))
    assert set(stem) == {"stem_structure", "resnet18_complete"}
    assert "no bias" in stem["stem_structure"]
    frozen_scale = failures(namespace("correct_reference", """
_Right = Residual
class Residual(_Right):
    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(num_channels, use_1x1conv, strides, **kwargs)
        self.bn2 = nn.BatchNorm(scale=False)
"""))
    assert "scale=False" in frozen_scale["residual_structure"]


def test_the_whole_network_part_fails_as_a_failure_and_says_it_checks_every_piece():
    message = failures(namespace("residual_no_bias"))["resnet18_complete"]
    assert message.startswith("failed: ")
    assert "11,181,450 parameters" in message and "no bias" in message
    assert "checks all your pieces together" in message


RESIDUAL_BODY = """
class Residual(Residual):
    def forward(self, X):
{body}
"""

MISTAKES = {
    "relu_before_add": ("        Y = npx.relu(self.bn1(self.conv1(X)))\n"
                        "        Y = npx.relu(self.bn2(self.conv2(Y)))\n"
                        "        return Y + (self.conv3(X) if self.conv3 else X)",
                        "ReLU is applied before the shortcut is added"),
    "no_shortcut": ("        Y = npx.relu(self.bn1(self.conv1(X)))\n"
                    "        return npx.relu(self.bn2(self.conv2(Y)))",
                    "the shortcut is not added"),
    "no_final_relu": ("        Y = npx.relu(self.bn1(self.conv1(X)))\n"
                      "        Y = self.bn2(self.conv2(Y))\n"
                      "        return Y + (self.conv3(X) if self.conv3 else X)",
                      "the final ReLU is missing"),
    "bn_after_relu": ("        Y = self.bn1(npx.relu(self.conv1(X)))\n"
                      "        Y = self.bn2(npx.relu(self.conv2(Y)))\n"
                      "        return npx.relu(Y + (self.conv3(X) if self.conv3 else X))",
                      "ReLU comes before batch normalization"),
    "shortcut_from_branch": ("        Y = npx.relu(self.bn1(self.conv1(X)))\n"
                             "        Z = self.bn2(self.conv2(Y))\n"
                             "        return npx.relu(Z + (self.conv3(X) if self.conv3 else Y))",
                             "does not compute"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_residual_behaviour_names_the_mistake(mistake):
    body, message = MISTAKES[mistake]
    failed = failures(namespace("correct_reference", RESIDUAL_BODY.format(body=body)))
    assert "residual_behaviour" in failed
    assert message in failed["residual_behaviour"]
    # Shapes and structure are right, and the later exercises do not suffer.
    for independent in ["residual_demo_shapes", "residual_structure", "stem_behaviour",
                        "resnet_block_units", "resnet18_assembly", "parameter_counts_values"]:
        assert independent not in failed


def test_projection_everywhere_is_caught_by_structure():
    patch = """
_Right = Residual
class Residual(_Right):
    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(num_channels, True, strides, **kwargs)
"""
    failed = failures(namespace("correct_reference", patch))
    assert "1x1 convolution only when asked" in failed["residual_structure"]
    assert "residual_demo_shapes" not in failed


def test_stride_on_the_second_convolution_is_caught():
    patch = """
_Right = Residual
class Residual(_Right):
    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(num_channels, use_1x1conv, strides, **kwargs)
        self.conv1 = nn.Conv2D(num_channels, 3, padding=1)
        self.conv2 = nn.Conv2D(num_channels, 3, padding=1, strides=strides)
"""
    failed = failures(namespace("correct_reference", patch))
    assert "residual_behaviour" in failed
    assert "resnet_block_units" not in failed


def test_a_broken_residual_does_not_cost_the_later_exercises():
    failed = failures(namespace("correct_reference", "class Residual(nn.Block):\n    pass\n"))
    assert {"residual_demo_shapes", "residual_behaviour", "resnet18_complete"} <= set(failed)
    for independent in ["stem_shapes", "stem_behaviour", "resnet_block_demo", "resnet_block_units",
                        "resnet18_demo", "resnet18_assembly", "resnet18_num_classes",
                        "print_layer_shapes_output", "parameter_counts_values"]:
        assert independent not in failed, failed.get(independent)


def test_stage_arguments_in_the_wrong_order_are_caught():
    patch = """
def resnet18(num_classes=10):
    net = nn.Sequential()
    net.add(make_stem())
    for channels in (64, 256, 128, 512):
        net.add(resnet_block(channels, 2, first_block=channels == 64))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net
"""
    failed = failures(namespace("correct_reference", patch))
    assert "resnet18_assembly" in failed and "(256, 2, False)" in failed["resnet18_assembly"]


def test_a_hard_coded_class_count_is_caught():
    patch = """
_right = resnet18
def resnet18(num_classes=10):
    return _right(10)
"""
    failed = failures(namespace("correct_reference", patch))
    assert set(failed) == {"resnet18_num_classes"}


def test_failure_messages_hide_the_check_code_and_name_the_exception():
    failed = failures(namespace("correct_reference", "def make_stem():\n    return 1 / 0\n"))
    message = failed["stem_shapes"]
    assert "ZeroDivisionError" in message and "def " not in message


def test_checks_write_nothing_to_stderr(capfd):
    patch = """
import sys, warnings, os
_Right = Residual
class Residual(_Right):
    def __init__(self, *args, **kwargs):
        warnings.warn("student warning")
        print("student noise", file=sys.stderr)
        os.write(2, b"fd-level noise")
        super().__init__(*args, **kwargs)
"""
    space = namespace("correct_reference", patch)
    checks.residual_demo_shapes(space["Residual"])
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "passed" in captured.out


def test_secret_challenges_pass_correct_code_and_replays_fail():
    """The grader draws fresh challenges for every part, visible ones included; correct code
    passes every draw, and the observations of a correct run under another draw, or under the
    notebook's fixed challenge, pass no part (no replaying or copying records)."""
    import numpy as onp
    from autograder.student.parts import judge_safely, observe_safely
    space = namespace("correct_tuples")
    observe = lambda part, name, challenge: observe_safely(part.observe, space[name], challenge)
    for seed in range(3):
        for check, name in CHECKS:
            part = ALL_PARTS[check]
            challenge = part.challenge(onp.random.default_rng(seed))
            assert judge_safely(part, challenge, observe(part, name, challenge)) is None, (seed, check)
            for other in [part.challenge(onp.random.default_rng(seed + 100)), part.challenge(None)]:
                assert judge_safely(part, challenge, observe(part, name, other)) is not None, (seed, check)


def _cases(part, challenge):
    """What a challenge holds apart from its sizes: the kinds of cases a part is judged on."""
    if part in ("residual_demo_shapes", "residual_shapes"):
        return [(p, s, x[1] == c, x[2] % 2) for c, p, s, x in challenge["cases"]]
    if part == "residual_structure":
        return [(p, s, c_in == c) for c, p, s, c_in in challenge["cases"]]
    if part == "residual_behaviour":
        return [(p, s, c_in == c, side % 2 if s == 2 else None) for c, p, s, c_in, side in challenge["cases"]]
    if part in ("resnet_block_demo", "resnet_block_units"):
        return [(first, count == 1, challenge["side"] % 2) for _, count, first in challenge["cases"]]
    if part == "print_layer_shapes_output":
        return [layer[0] for layer in challenge["spec"]["layers"]]
    if part == "parameter_counts_values":
        return [([layer[0] for layer in spec["layers"]], frozen)
                for spec, frozen in zip(challenge["specs"], challenge["frozen"])]
    return sorted(challenge)


def test_every_draw_holds_the_cases_of_the_notebooks_challenge():
    """Only sizes, class counts and weights are drawn: every draw has the cases of the fixed
    challenge (for Residual: identity, stride-1 and stride-2 projections, other input
    channels...), so no draw can miss the case a mistake shows in."""
    import numpy as onp
    for name, part in ALL_PARTS.items():
        fixed = _cases(name, part.challenge(None))
        for seed in range(50):
            assert _cases(name, part.challenge(onp.random.default_rng(seed))) == fixed, (name, seed)


def test_the_observers_need_nothing_from_the_judges_side():
    """The hidden parts' observers run in the sandbox and a notebook can print them: importing
    them loads only the published runtime, and no module it loads names any judge or
    reference of the hidden module."""
    import ast
    import importlib.util
    import json
    import re
    import subprocess
    import sys
    from pathlib import Path
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys, autograder.sandboxed.observers.resnet18; "
         "print(json.dumps(sorted(m for m in sys.modules if m.startswith('autograder'))))"],
        capture_output=True, text=True, check=True).stdout)
    assert "autograder.sandboxed.observers.resnet18" in loaded
    assert all(m == "autograder" or m.startswith(("autograder.student", "autograder.sandboxed")) for m in loaded), loaded
    assert "autograder.student.numpy_ops" not in loaded
    tree = ast.parse(Path(hidden_checks.__file__).read_text())
    judge_side = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    judge_side |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                   for target in node.targets if isinstance(target, ast.Name)} - {"PARTS"}
    assert {"residual_outputs", "stem_outputs", "resnet18_output", "RESNET18_COUNTS", "_conv_weight"} <= judge_side
    for module in loaded:
        source = Path(importlib.util.find_spec(module).origin).read_text()
        named = {n for n in judge_side if re.search(rf"\b{re.escape(n)}\b", source)}
        assert not named, (module, named)


def test_judges_survive_malformed_observations():
    from autograder.student.parts import judge_safely
    for part in ALL_PARTS.values():
        challenge = part.challenge(None)
        for forged in [None, {}, {"shapes": "x"}, {"outputs": [{"output": "nan"}]}, {"error": "X"}, [1, 2]]:
            verdict = judge_safely(part, challenge, forged)
            assert isinstance(verdict, str) and verdict


def test_initialize_canonical_gives_the_canonical_values_whichever_way_a_parameter_gets_them():
    """The whole-network observation's weights are written where MXNet allocated each parameter's
    array, when the parameter gets its shape: on the first forward pass, or at once where the
    shape is known up front (in_channels given). Either way they are the canonical values, as set
    into a block after Gluon's ordinary initialisation and forward pass, and no parameter's array
    is copied on the way."""
    import numpy as onp
    from mxnet import gluon, np as mnp, npx
    from autograder.student import gluon_walk as walk
    from autograder.student.parts import canonical
    npx.set_np()

    def net():
        block = gluon.nn.Sequential()
        block.add(gluon.nn.Conv2D(6, 3, in_channels=2), gluon.nn.BatchNorm(), gluon.nn.Activation("relu"),
                  gluon.nn.Conv2D(4, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Dense(5))
        return block

    x = canonical(3, "input", (2, 2, 9, 9))
    copies, gluons_copyto = [], mnp.ndarray.copyto

    def counted(self, other):
        copies.append(self.shape)
        return gluons_copyto(self, other)

    ours = net()
    params = list(ours.collect_params().values())
    mnp.ndarray.copyto = counted
    try:
        walk.initialize_canonical(ours, seed=11)
        assert params[0].shape == (6, 2, 3, 3) and params[0]._data is not None  # shaped up front: set now
        assert params[-2]._deferred_init  # the Dense layer's weight: on the forward pass
        got = walk.forward(ours, x).asnumpy()
    finally:
        mnp.ndarray.copyto = gluons_copyto
    assert copies == []
    theirs = net()
    theirs.initialize()
    walk.forward(theirs, x)
    for param, kind in walk._canonical_roles(theirs):
        param.set_data(mnp.array(canonical(11, kind, param.shape), dtype=param.dtype))
    want = walk.forward(theirs, x).asnumpy()
    for mine, reference in zip(params, theirs.collect_params().values()):
        assert onp.array_equal(mine.data().asnumpy(), reference.data().asnumpy()), mine.name
    assert onp.array_equal(got, want)


def test_a_parameter_initialised_another_way_afterwards_gets_gluons_values():
    """The canonical values are written only while the parameter's initializer is still the
    canonical one: a parameter initialised again with another initializer gets that one's values
    (a block's initializer does not count: in Gluon a parameter's own wins)."""
    import numpy as onp
    from mxnet import gluon, init, npx
    from autograder.student import gluon_walk as walk
    npx.set_np()
    layer = gluon.nn.Dense(3, in_units=4)
    walk.initialize_canonical(layer, seed=5)
    layer.weight.initialize(init.Constant(0.25), force_reinit=True)
    assert onp.array_equal(layer.weight.data().asnumpy(), onp.full((3, 4), 0.25, dtype="float32"))


def test_the_checks_leave_each_parameter_its_own_initializer():
    """run() and initialize_canonical() give the canonical values only while they initialise: the
    parameters' own initializers are back afterwards, so the block's next initialisation is
    Gluon's (a block-wide initializer reaches every parameter that has none of its own)."""
    import numpy as onp
    from mxnet import gluon, init, npx
    from autograder.student import gluon_walk as walk
    npx.set_np()
    one = init.One()
    block = gluon.nn.Sequential()
    block.add(gluon.nn.Dense(3), gluon.nn.Dense(2, weight_initializer=one))
    walk.run(block, (2, 4))
    first, second = walk.children(block)
    assert first.weight.init is None and second.weight.init is one
    walk.initialize_canonical(block, seed=3)
    assert first.weight.init is None and second.weight.init is one
    block.initialize(init.Constant(0.25), force_reinit=True)
    assert onp.array_equal(first.weight.data().asnumpy(), onp.full((3, 4), 0.25, dtype="float32"))
    assert onp.array_equal(second.weight.data().asnumpy(), onp.ones((2, 3), dtype="float32"))


def test_a_parameter_of_any_type_gets_its_canonical_values_in_that_type():
    """The canonical values are written into the parameter's own array, rounded to its type."""
    import numpy as onp
    from mxnet import gluon, npx
    from autograder.student import gluon_walk as walk
    from autograder.student.parts import canonical
    npx.set_np()
    for dtype in ("float32", "float16", "int8"):
        layer = gluon.nn.Dense(3, dtype=dtype)
        walk.initialize_canonical(layer, seed=5)
        layer.weight.shape = (3, 4)  # what the first forward pass would infer
        layer.weight._finish_deferred_init()
        got = layer.weight.data().asnumpy()
        assert got.dtype == onp.dtype(dtype)
        assert onp.array_equal(got, canonical(5, "dense.weight", (3, 4), dtype)), dtype
