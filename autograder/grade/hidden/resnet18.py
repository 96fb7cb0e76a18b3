"""Hidden checks of the ResNet-18 notebook: the instructor's side.

The hidden-test cells of ``source/resnet18`` call ``hidden.<part>(obj)``.
These parts are judged against plain-NumPy references of the correct
network and of common mistakes, on challenges the batch grader draws
secretly; they are never published to students. Observers and stand-ins
shared with the visible checks come from ``autograder.student.checks.resnet18``.
"""
import functools
import inspect

from mxnet import autograd, gluon, np as mnp

from ...student import gluon_walk as walk
from . import numpy_ops as ref
from ...student.checks.resnet18 import (ResidualDemoShapes, ResnetBlockDemo, build_residual,
                                        residual_name, spied_resnet18, stage_name)
from .counting import parameter_counts
from ...student.parts import Part, canonical, close, expect, fail, secret_seed

RESNET18_COUNTS = [11_186_186, 11_178_378, 7_808]
STAGE_CHANNELS = (64, 128, 256, 512)


# ------------------------------------------------------------ observer side

def _layer_settings(block):
    return {"convs": [{"kernel": list(walk.kernel(c)), "stride": list(walk.stride(c)),
                       "pad": list(walk.padding(c)), "channels": int(c._kwargs["num_filter"]),
                       "bias": c.bias is not None}
                      for c in walk.convs(block)],
            "pools": [{"kernel": list(p._kwargs["kernel"]), "stride": list(walk.stride(p)),
                       "pad": list(walk.padding(p))} for p in walk.max_pools(block)],
            "batch_norms": len(walk.batch_norms(block)),
            "batch_norms_trained": all(bn.gamma.grad_req != "null" and bn.beta.grad_req != "null"
                                       for bn in walk.batch_norms(block))}


# Gluon's defaults are checked setting by setting (rather than by counting
# parameters), so that a layer the forward pass forgets to use costs the
# behaviour part only.
DEFAULTS = ("Keep Gluon's default settings (biases included, plain nn.BatchNorm()): the parameter "
            "counts of the notebook, 11,186,186 in all, depend on them.")



# --------------------------------------------------------------- judge side

def _conv(x, seed, c_out, k, stride=1, pad=0, bias=True):
    weight = canonical(seed, "conv.weight", (c_out, x.shape[1], k, k))
    b = canonical(seed, "conv.bias", (c_out,)) if bias else None
    return ref.conv2d(x, weight, b, stride=stride, pad=pad)


def _bn(x, seed):
    c = (x.shape[1],)
    return ref.batch_norm(x, canonical(seed, "bn.gamma", c), canonical(seed, "bn.beta", c),
                          canonical(seed, "bn.mean", c), canonical(seed, "bn.var", c))


def residual_outputs(x, seed, channels, proj, strides, bias=True):
    """The correct output of Residual and those of common mistakes, with canonical weights."""
    conv1 = lambda z: _conv(z, seed, channels, 3, strides, 1, bias)
    conv2 = lambda z: _conv(z, seed, channels, 3, 1, 1, bias)
    short = _conv(x, seed, channels, 1, strides, 0, bias) if proj else x
    main = _bn(conv2(ref.relu(_bn(conv1(x), seed))), seed)
    swapped = _bn(ref.relu(conv2(_bn(ref.relu(conv1(x)), seed))), seed)
    return [
        (None, ref.relu(main + short)),
        ("the final ReLU is missing: apply ReLU after adding the shortcut", main + short),
        ("the ReLU is applied before the shortcut is added; add first, then ReLU", ref.relu(main) + short),
        ("the shortcut is not added: the output must be ReLU(main path + shortcut)", ref.relu(main)),
        ("ReLU comes before batch normalization; the order is convolution, BatchNorm, ReLU",
         ref.relu(swapped + short)),
    ]


def stem_outputs(x, seed, bias=True):
    z = _conv(x, seed, 64, 7, 2, 3, bias)
    return [
        (None, ref.max_pool(ref.relu(_bn(z, seed)))),
        ("ReLU comes before BatchNorm; normalise first, then ReLU", ref.max_pool(_bn(ref.relu(z), seed))),
        ("there is no ReLU after the BatchNorm layer", ref.max_pool(_bn(z, seed))),
    ]


@functools.lru_cache(maxsize=4)
def resnet18_output(seed, bias=True, num_classes=10):
    """ResNet-18's scores for the canonical 32x32 input and weights of ``seed`` (cached: a
    batch shares one challenge, and this is the slowest reference)."""
    y = stem_outputs(canonical(seed, "input", (1, 1, 32, 32)), seed, bias)[0][1]
    for i, channels in enumerate(STAGE_CHANNELS):
        for j in range(2):
            down = i > 0 and j == 0
            y = residual_outputs(y, seed, channels, down, 2 if down else 1, bias)[0][1]
    y = ref.global_avg_pool(y)
    weight = canonical(seed, "dense.weight", (num_classes, y.shape[1]))
    return ref.dense(y, weight, canonical(seed, "dense.bias", (num_classes,)) if bias else 0)


def _judge_outputs(got, candidates, what):
    for mistake, want in candidates:
        if close(got, want):
            if mistake is None:
                return
            fail(f"in {what}, {mistake}.")
    fail(f"{what} does not compute ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X)). Check the order "
         "of the layers, that the first 3x3 convolution uses the stride, and that the shortcut is "
         "the input itself (or its 1x1 convolution).")


# ----------------------------------------------------------------- Residual

class ResidualShapes(ResidualDemoShapes):
    name = "residual_shapes"
    description = "Residual gives the right output shape for other channel counts and strides"

    def challenge(self, rng=None):
        if rng is None:
            return {"cases": [[5, False, 1, [2, 5, 9, 9]], [10, True, 1, [2, 4, 7, 7]],
                              [16, True, 2, [3, 8, 9, 9]], [8, True, 2, [1, 8, 8, 8]]]}
        cases = []
        for _ in range(4):
            c, strides = int(rng.integers(2, 17)), int(rng.choice([1, 2]))
            proj = bool(strides == 2 or rng.random() < 0.5)
            c_in = int(rng.integers(1, 17)) if proj else c
            side = int(rng.integers(3, 12))
            cases.append([c, proj, strides, [int(rng.integers(1, 4)), c_in, side, side]])
        return {"cases": cases}


class ResidualStructure(Part):
    name = "residual_structure"
    description = ("Residual has two 3x3 convolutions, two batch norms, a 1x1 convolution only when asked, "
                   "and Gluon's defaults (biases included)")

    def challenge(self, rng=None):
        c = 6 if rng is None else int(rng.integers(2, 9))
        # (num_channels, use_1x1conv, strides, input channels); None, None: Residual(c) with the defaults
        return {"cases": [[c, False, 1, c], [2 * c, True, 2, c], [2 * c, True, 1, c], [c, None, None, c]]}

    def observe(self, Residual, challenge):
        settings = []
        for c, p, s, c_in in challenge["cases"]:
            blk = build_residual(Residual, c, p, s)
            walk.run(blk, (1, c_in, 8, 8))
            settings.append(_layer_settings(blk))
        return {"settings": settings}

    def judge(self, challenge, observation):
        for (c, proj, s, _), found in zip(challenge["cases"], observation["settings"], strict=True):
            name = residual_name(c, proj, s)
            if proj is None:
                name += " (the defaults: use_1x1conv=False, strides=1)"
                proj, s = False, 1
            convs = found["convs"]
            three = [v for v in convs if v["kernel"] == [3, 3]]
            ones = [v for v in convs if v["kernel"] == [1, 1]]
            expect(len(three) == 2, f"{name} should contain two 3x3 convolutions, found {len(three)}.")
            expect(len(ones) == (1 if proj else 0),
                   f"{name} should contain {'one' if proj else 'no'} 1x1 convolution, found {len(ones)}. "
                   "The 1x1 convolution belongs on the shortcut, and only when use_1x1conv=True.")
            expect(len(convs) == 2 + len(ones),
                   f"{name} contains convolutions with other kernel sizes; use 3x3 on the main path.")
            expect(found["batch_norms"] == 2,
                   f"{name} should contain two BatchNorm layers, found {found['batch_norms']}.")
            for v in three:
                expect(v["pad"] == [1, 1], f"the 3x3 convolutions in {name} need padding=1.")
                expect(v["channels"] == c, f"every convolution in {name} should have {c} output channels.")
            expect(sorted(v["stride"][0] for v in three) == sorted([1, s]),
                   f"in {name} one 3x3 convolution (the first) should use strides={s}, the other 1.")
            for v in ones:
                expect(v["stride"] == [s, s],
                       f"the 1x1 convolution in {name} should use strides={s}, like the first 3x3 one.")
                expect(v["channels"] == c, f"the 1x1 convolution in {name} should have {c} output channels.")
            expect(all(v["bias"] is True for v in convs),
                   f"the convolutions of {name} have no bias (use_bias=False). " + DEFAULTS)
            expect(found["batch_norms_trained"] is True,
                   f"the BatchNorm layers of {name} should learn their scale and shift (no center=False "
                   "or scale=False). " + DEFAULTS)


class ResidualBehaviour(Part):
    name = "residual_behaviour"
    description = "Residual computes ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X))"

    def challenge(self, rng=None):
        if rng is None:
            cases = [[4, False, 1, 4, 6], [6, True, 2, 3, 6], [6, True, 1, 3, 5]]
        else:
            c = int(rng.integers(2, 8))
            cases = [[c, False, 1, c, int(rng.integers(4, 8))],
                     [c + int(rng.integers(1, 4)), True, 2, c, int(rng.integers(4, 9))],
                     [c + 1, True, 1, c, int(rng.integers(3, 7))]]
        return {"seed": secret_seed(rng), "cases": cases}

    def observe(self, Residual, challenge):
        seed, outputs = challenge["seed"], []
        for c, p, s, c_in, side in challenge["cases"]:
            blk = build_residual(Residual, c, p, s)
            x = canonical(seed, "input", (2, c_in, side, side))
            walk.run(blk, x.shape)
            walk.set_canonical(blk, seed)
            outputs.append({"output": walk.forward(blk, x).asnumpy().tolist(), "biases": walk.has_biases(blk)})
        return {"outputs": outputs}

    def judge(self, challenge, observation):
        seed = challenge["seed"]
        for (c, p, s, c_in, side), got in zip(challenge["cases"], observation["outputs"], strict=True):
            x = canonical(seed, "input", (2, c_in, side, side))
            candidates = residual_outputs(x, seed, c, p, s, bias=bool(got["biases"]))
            _judge_outputs(got["output"], candidates, f"Residual({c}, use_1x1conv={p}, strides={s})")


# -------------------------------------------------------------------- stem

class StemStructure(Part):
    name = "stem_structure"
    description = "make_stem is a 7x7/64 stride-2 convolution, BatchNorm, ReLU and 3x3 stride-2 max pooling"

    def observe(self, make_stem, challenge):
        stem = make_stem()
        walk.run(stem, (1, 1, 32, 32))
        return _layer_settings(stem)

    def judge(self, challenge, found):
        convs, pools = found["convs"], found["pools"]
        expect(len(convs) == 1, f"the stem should hold exactly one convolution, found {len(convs)}.")
        conv = convs[0]
        expect(conv["kernel"] == [7, 7] and conv["channels"] == 64,
               "the stem's convolution should be 7x7 with 64 output channels.")
        expect(conv["stride"] == [2, 2] and conv["pad"] == [3, 3],
               "the stem's convolution should use strides=2 and padding=3.")
        expect(found["batch_norms"] == 1, "the stem should hold one BatchNorm layer.")
        expect(len(pools) == 1, "the stem should end with one MaxPool2D layer.")
        expect(pools[0] == {"kernel": [3, 3], "stride": [2, 2], "pad": [1, 1]},
               "the stem's max pooling should use pool_size=3, strides=2, padding=1.")
        expect(conv["bias"] is True, "the stem's convolution has no bias (use_bias=False). " + DEFAULTS)
        expect(found["batch_norms_trained"] is True,
               "the stem's BatchNorm should learn its scale and shift (no center=False or scale=False). "
               + DEFAULTS)


class StemBehaviour(Part):
    name = "stem_behaviour"
    description = "make_stem applies convolution, then BatchNorm, then ReLU, then max pooling"

    def challenge(self, rng=None):
        return {"seed": secret_seed(rng), "side": 20 if rng is None else int(rng.integers(12, 25))}

    def observe(self, make_stem, challenge):
        stem = make_stem()
        x = canonical(challenge["seed"], "input", (2, 1, challenge["side"], challenge["side"]))
        walk.run(stem, x.shape)
        walk.set_canonical(stem, challenge["seed"])
        return {"output": walk.forward(stem, x).asnumpy().tolist(), "biases": walk.has_biases(stem)}

    def judge(self, challenge, observation):
        seed, side = challenge["seed"], challenge["side"]
        x = canonical(seed, "input", (2, 1, side, side))
        for mistake, want in stem_outputs(x, seed, bias=bool(observation["biases"])):
            if close(observation["output"], want):
                if mistake is None:
                    return
                fail(mistake + ".")
        fail("the stem's output does not match MaxPool(ReLU(BatchNorm(Conv(X)))).")


# ------------------------------------------------------------ resnet_block

def _units(channels, count, first_block):
    return [[channels, not first_block, 1 if first_block else 2]] + [[channels, False, 1]] * (count - 1)


def _describe_units(calls):
    return ", ".join(f"Residual({c}, use_1x1conv={p}, strides={s})" for c, p, s in calls) or "nothing"


class ResnetBlockUnits(ResnetBlockDemo):
    name = "resnet_block_units"
    description = "resnet_block builds the right Residual units in the right order"

    def challenge(self, rng=None):
        if rng is None:
            return {"cases": [[64, 2, True], [128, 2, False], [32, 3, True], [48, 4, None], [8, 1, False]]}
        return {"cases": [[int(rng.integers(2, 65)), int(rng.integers(1, 5)), first]
                          for first in (True, False, True, None)]}

    def judge(self, challenge, observation):
        for (channels, count, first), got in zip(challenge["cases"], observation["found"], strict=True):
            name = stage_name(channels, count, first)
            want = _units(channels, count, bool(first))
            expect(got["calls"], "resnet_block should create its units with the Residual class.")
            expect(got["calls"] == want, f"{name} created {_describe_units(got['calls'])}; expected "
                                         f"{_describe_units(want)}. Only the first unit of a block that is "
                                         "not the first block changes the shape.")
            expect(got["children"] == count, f"the block returned by {name} should hold its {count} units as "
                                             f"its children, in order (found {got['children']}).")
            side = 8 if first else 4
            expect(got["shape"] == [2, channels, side, side],
                   f"{name} gave output shape {tuple(got['shape'])}, expected {(2, channels, side, side)}.")


# ---------------------------------------------------------------- resnet18

class Resnet18Assembly(Part):
    name = "resnet18_assembly"
    description = ("resnet18 chains the stem, four stages of 64, 128, 256, 512 channels, "
                   "global average pooling and Dense")

    def challenge(self, rng=None):
        return {"sides": [224, 96] if rng is None else [int(rng.integers(2, 8)) * 32 for _ in range(2)]}

    def observe(self, resnet18, challenge):
        net, calls = spied_resnet18(resnet18)
        shapes = [walk.shape_of(walk.run(net, (2, 1, side, side))) for side in challenge["sides"]]
        leaves = walk.leaves(net)
        stems = [i for i, b in enumerate(leaves) if isinstance(b, gluon.nn.Conv2D) and walk.stride(b) == (4, 4)]
        return {"calls": calls, "shapes": shapes, "stems": stems,
                "tail": [type(b).__name__ for b in leaves[-2:]],
                "global_pools": sum(isinstance(b, gluon.nn.GlobalAvgPool2D) for b in leaves),
                "dense_units": int(leaves[-1]._units) if isinstance(leaves[-1], gluon.nn.Dense) else None,
                "dense_bias": isinstance(leaves[-1], gluon.nn.Dense) and leaves[-1].bias is not None,
                "tail_is_pool_then_dense": (len(leaves) > 1 and isinstance(leaves[-2], gluon.nn.GlobalAvgPool2D)
                                            and isinstance(leaves[-1], gluon.nn.Dense))}

    def judge(self, challenge, got):
        want = [[64, 2, True], [128, 2, False], [256, 2, False], [512, 2, False]]
        expect(got["calls"] == want,
               f"resnet18 called resnet_block with {[tuple(c) for c in got['calls']] or 'nothing'}; expected "
               f"the four stages {[tuple(c) for c in want]} as (num_channels, num_residuals, first_block).")
        for side, shape in zip(challenge["sides"], got["shapes"], strict=True):
            expect(shape == [2, 10], f"resnet18() on a {side}x{side} image gave {tuple(shape)}, expected (2, 10).")
        expect(got["stems"] == [0], "resnet18 should begin with one stem, the one make_stem() returns, "
                                    "before the stages.")
        expect(got["global_pools"] == 1, "resnet18 should have one GlobalAvgPool2D layer after the stages.")
        expect(got["dense_units"] == 10, "resnet18 should end with a Dense layer of 10 units (one score per class).")
        expect(got["tail_is_pool_then_dense"] is True,
               "the global average pooling should come right before the final Dense layer.")
        expect(got["dense_bias"] is True, "the final Dense layer has no bias (use_bias=False). " + DEFAULTS)


class Resnet18NumClasses(Part):
    name = "resnet18_num_classes"
    description = "resnet18(num_classes) sizes its output layer"

    def challenge(self, rng=None):
        return {"num_classes": 7 if rng is None else int(rng.integers(2, 40))}

    def observe(self, resnet18, challenge):
        try:
            inspect.signature(resnet18).bind(1)
        except TypeError:
            fail("resnet18 should accept num_classes (default 10).")
        net, _ = spied_resnet18(resnet18, challenge["num_classes"])
        return {"shape": walk.shape_of(walk.run(net, (3, 1, 64, 64)))}

    def judge(self, challenge, observation):
        k = challenge["num_classes"]
        expect(observation["shape"] == [3, k],
               f"resnet18({k}) on a batch of 3 gave {tuple(observation['shape'])}, expected (3, {k}).")


def _outputs_through(layer, y, found):
    """Apply ``layer`` to ``y``, noting the shape after every layer; the layers of a
    (Hybrid)Sequential container are applied one by one, at any depth, so a stage
    is found whether it sits at the top level or inside a container of its own."""
    if isinstance(layer, (gluon.nn.Sequential, gluon.nn.HybridSequential)):
        for child in walk.children(layer):
            y = _outputs_through(child, y, found)
    else:
        y = layer(y)
    found.append(walk.shape_of(y))
    return y


class Resnet18Complete(Part):
    """The one integration part: the network built from all the student's pieces.

    Every other part judges one exercise on its own; this one repeats, on the
    whole network, what the notebook promises of it (the stage shapes, the
    11,186,186 parameters, its output), so a mistake in any piece costs these
    marks too. The notebook says so."""
    name = "resnet18_complete"
    description = ("the whole ResNet-18, built from all your pieces (Residual, make_stem, resnet_block, "
                   "resnet18), has the stage shapes, 11,186,186 parameters and outputs of ResNet-18")
    PIECES = ("This part checks all your pieces together, so a mistake in any of them shows here as well; "
              "the parts of the exercise that holds it say which piece to fix.")

    def challenge(self, rng=None):
        sides = [224, 96] if rng is None else [int(rng.integers(2, 6)) * 32 for _ in range(2)]
        return {"sides": sides, "seed": secret_seed(rng)}

    def observe(self, resnet18, challenge):
        net = resnet18()
        x = canonical(challenge["seed"], "input", (1, 1, 32, 32))
        walk.run(net, x.shape)
        walk.set_canonical(net, challenge["seed"])
        output = walk.forward(net, x).asnumpy().tolist()
        shapes = []
        for side in challenge["sides"]:  # shapes do not depend on the weights: no re-initialising
            found = []
            with autograd.predict_mode():
                _outputs_through(net, mnp.zeros((1, 1, side, side)), found)
            shapes.append(found)
        return {"shapes": shapes, "counts": list(parameter_counts(net)), "biases": walk.has_biases(net),
                "output": output}

    def judge(self, challenge, got):
        for side, shapes in zip(challenge["sides"], got["shapes"], strict=True):
            q = side // 4
            want = [[1, c, (q - 1) // f + 1, (q - 1) // f + 1] for c, f in zip(STAGE_CHANNELS, (1, 2, 4, 8))]
            missing = [tuple(w) for w in want if w not in shapes]
            expect(not missing, f"at a {side}x{side} input, no layer of your network outputs "
                                f"{', '.join(map(str, missing))}; the four stages should output "
                                f"{', '.join(str(tuple(w)) for w in want)}. " + self.PIECES)
        counts = [int(n) for n in got["counts"]]
        no_bias = "" if got["biases"] is True else " Some of its convolutions or its Dense layer have no bias."
        expect(counts == RESNET18_COUNTS,
               f"your network has {counts[0]:,} parameters ({counts[1]:,} trainable, {counts[2]:,} not) "
               f"instead of {RESNET18_COUNTS[0]:,} ({RESNET18_COUNTS[1]:,} and {RESNET18_COUNTS[2]:,})."
               f"{no_bias} " + self.PIECES)
        expect(close(got["output"], resnet18_output(challenge["seed"], bias=bool(got["biases"]))),
               "with fixed weights, your network's scores differ from those of ResNet-18 built as the "
               "notebook describes. " + self.PIECES)


PARTS = {part.name: part for part in [
    ResidualShapes(), ResidualStructure(), ResidualBehaviour(), StemStructure(), StemBehaviour(),
    ResnetBlockUnits(), Resnet18Assembly(), Resnet18NumClasses(), Resnet18Complete()]}

# The names the notebook's hidden-test cells call: hidden.<name>(obj).
globals().update({name: part.check for name, part in PARTS.items()})


# TODO(split): observers move to autograder.sandboxed.observers.resnet18
OBSERVERS = {name: part.observe for name, part in PARTS.items()}
