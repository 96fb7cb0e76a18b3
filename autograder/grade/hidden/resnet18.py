"""Hidden checks of the ResNet-18 notebook: the judges, on the instructor's side only.

The hidden-test cells of ``source/resnet18`` call ``hidden.<part>(obj)``.
Each part here draws its challenge (secretly, per submission, in the batch
grader) and judges what the student's code did against plain-NumPy
references of the correct network and of common mistakes. What each part
observes is the public observer of the same name in
``autograder/sandboxed/observers/resnet18.py``, the very function the
sandbox runs; nothing in this module is ever bound into the sandbox.

Every draw of a challenge holds the same cases (for ``Residual``: an
identity block, a stride-1 and a stride-2 projection, input channels other
than the output's, ...), only the sizes, class counts and weights vary, so a
verdict depends on the code and never on the draw.
"""
import functools
import zlib

import numpy as onp

from ...sandboxed.observers.resnet18 import OBSERVERS
from ...student import gluon_walk as walk
from . import numpy_ops as ref
from ...student.checks.resnet18 import ResidualDemoShapes, ResnetBlockDemo, residual_name, stage_name
from ...student.parts import CANONICAL_BLOCK, Part, canonical, close, expect, fail, secret_seed

RESNET18_COUNTS = [11_186_186, 11_178_378, 7_808]
STAGE_CHANNELS = (64, 128, 256, 512)


class Observed(Part):
    """A hidden part whose observer is the public one of its name (see the module's docstring)."""

    def observe(self, obj, challenge):
        return OBSERVERS[self.name](obj, challenge)


# Gluon's defaults are checked setting by setting (rather than by counting
# parameters), so that a layer the forward pass forgets to use costs the
# behaviour part only.
DEFAULTS = ("Keep Gluon's default settings (biases included, plain nn.BatchNorm()): the parameter "
            "counts of the notebook, 11,186,186 in all, depend on them.")


# ------------------------------------------------------- NumPy references

# The references' weights, by (seed, role, shape): layers of equal shape share their values
# (see parts.canonical), so ResNet-18's 62 parameters need about 30 of these, made once per seed.
_weights = functools.lru_cache(maxsize=64)(canonical)


@functools.lru_cache(maxsize=64)
def _conv_weight(seed, shape, top, bottom, left, right):
    """``canonical(seed, "conv.weight", shape)[:, :, top:bottom + 1, left:right + 1]``, made
    without the whole tensor: canonical repeats a block of CANONICAL_BLOCK draws, so each
    weight is the draw at its flat index modulo the block's size. ResNet-18's last stage
    needs a ninth of its 3x3 kernels; making only those is most of this reference's speed."""
    c_out, c_in, k, _ = shape
    if c_out * c_in * k * k <= CANONICAL_BLOCK or (bottom - top + 1) * (right - left + 1) == k * k:
        return _weights(seed, "conv.weight", shape)[:, :, top:bottom + 1, left:right + 1]
    rng = onp.random.default_rng([seed, zlib.crc32(f"conv.weight:{shape}".encode())])
    block = rng.standard_normal(CANONICAL_BLOCK) / onp.sqrt(c_in * k * k)
    # Tap (i, j) of the m-th (output, input) channel pair is the draw at (m * k * k + i * k + j)
    # modulo the block's size: along m that repeats every CANONICAL_BLOCK pairs, so one period
    # per tap, tiled, gives it.
    pairs = onp.arange(CANONICAL_BLOCK) * (k * k)
    return onp.stack([onp.stack([onp.resize(block[(pairs + i * k + j) % CANONICAL_BLOCK], (c_out, c_in))
                                 for j in range(left, right + 1)], axis=-1)
                      for i in range(top, bottom + 1)], axis=-2)


def _taps(side, k, stride, pad):
    """The first and last kernel taps, along one axis, that ever meet the input rather than
    the zero padding, and the output's size along that axis."""
    out = (side + 2 * pad - k) // stride + 1
    return max(0, pad - stride * (out - 1)), min(k - 1, side - 1 + pad), out


def _conv(x, seed, c_out, k, stride=1, pad=0, bias=True):
    """Conv2D with the canonical weights of ``seed``. Taps that only ever meet the padding add
    nothing and are left out: ResNet-18's last stage runs on 1x1 and 2x2 inputs."""
    (top, bottom, rows), (left, right, columns) = (_taps(n, k, stride, pad) for n in x.shape[2:])
    weight = _conv_weight(seed, (c_out, x.shape[1], k, k), top, bottom, left, right)
    b = _weights(seed, "conv.bias", (c_out,)) if bias else None
    x = onp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))[:, :, top:, left:]
    return ref.conv2d(x, weight, b, stride=stride)[:, :, :rows, :columns]


def _bn(x, seed):
    c = (x.shape[1],)
    return ref.batch_norm(x, _weights(seed, "bn.gamma", c), _weights(seed, "bn.beta", c),
                          _weights(seed, "bn.mean", c), _weights(seed, "bn.var", c))


def residual_outputs(x, seed, channels, proj, strides, bias=True):
    """[(mistake, output)]: the correct output of Residual (mistake None) first, then those
    of common mistakes, with canonical weights. Each output is computed only when asked for
    (a callable), so judging a correct block costs one forward pass."""
    conv1 = functools.cache(lambda: _conv(x, seed, channels, 3, strides, 1, bias))
    conv2 = lambda z: _conv(z, seed, channels, 3, 1, 1, bias)
    short = functools.cache(lambda: _conv(x, seed, channels, 1, strides, 0, bias) if proj else x)
    main = functools.cache(lambda: _bn(conv2(ref.relu(_bn(conv1(), seed))), seed))
    return [
        (None, lambda: ref.relu(main() + short())),
        ("the final ReLU is missing: apply ReLU after adding the shortcut", lambda: main() + short()),
        ("the ReLU is applied before the shortcut is added; add first, then ReLU",
         lambda: ref.relu(main()) + short()),
        ("the shortcut is not added: the output must be ReLU(main path + shortcut)", lambda: ref.relu(main())),
        ("ReLU comes before batch normalization; the order is convolution, BatchNorm, ReLU",
         lambda: ref.relu(_bn(ref.relu(conv2(_bn(ref.relu(conv1()), seed))), seed) + short())),
    ]


def stem_outputs(x, seed, bias=True):
    """Like :func:`residual_outputs`, for the stem."""
    z = functools.cache(lambda: _conv(x, seed, 64, 7, 2, 3, bias))
    return [
        (None, lambda: ref.max_pool(ref.relu(_bn(z(), seed)))),
        ("ReLU comes before BatchNorm; normalise first, then ReLU", lambda: ref.max_pool(_bn(ref.relu(z()), seed))),
        ("there is no ReLU after the BatchNorm layer", lambda: ref.max_pool(_bn(z(), seed))),
    ]


def resnet18_output(seed, side, bias=True):
    """ResNet-18's 10 scores for the canonical input of ``side`` x ``side`` and weights of ``seed``."""
    y = stem_outputs(canonical(seed, "input", (1, 1, side, side)), seed, bias)[0][1]()
    for i, channels in enumerate(STAGE_CHANNELS):
        for j in range(2):
            down = i > 0 and j == 0
            y = residual_outputs(y, seed, channels, down, 2 if down else 1, bias)[0][1]()
    y = ref.global_avg_pool(y)
    return ref.dense(y, _weights(seed, "dense.weight", (10, y.shape[1])),
                     _weights(seed, "dense.bias", (10,)) if bias else 0)


def _first_match(got, candidates):
    """The mistake (None: correct) whose output ``got`` matches, or False when none does."""
    for mistake, want in candidates:
        if close(got, want()):
            return mistake
    return False


# ----------------------------------------------------------------- Residual

class ResidualShapes(Observed, ResidualDemoShapes):
    name = "residual_shapes"
    description = "Residual gives the right output shape for other channel counts and strides"

    def challenge(self, rng=None):
        """(num_channels, use_1x1conv, strides, input shape): an identity block at an odd side, a
        stride-1 projection and a stride-2 projection from other channel counts (odd side), a
        stride-2 projection keeping the channels (even side)."""
        if rng is None:
            return {"cases": [[5, False, 1, [2, 5, 9, 9]], [10, True, 1, [2, 4, 7, 7]],
                              [16, True, 2, [3, 8, 9, 9]], [8, True, 2, [1, 8, 8, 8]]]}
        draw = lambda low, high: int(rng.integers(low, high))
        cases = []
        for proj, strides, wider, parity in [(False, 1, False, 1), (True, 1, True, 1), (True, 2, True, 1),
                                             (True, 2, False, 0)]:
            c_in, side = draw(2, 13), 2 * draw(2, 6) + parity
            c = c_in + draw(1, 9) if wider else c_in
            cases.append([c, proj, strides, [draw(1, 4), c_in, side, side]])
        return {"cases": cases}


class ResidualStructure(Observed):
    name = "residual_structure"
    description = ("Residual has two 3x3 convolutions, two batch norms, a 1x1 convolution only when asked, "
                   "and Gluon's defaults (biases included)")

    def challenge(self, rng=None):
        """(num_channels, use_1x1conv, strides, input channels): an identity block, a stride-2 and a
        stride-1 projection to more channels, and Residual(c) with the defaults (None, None)."""
        if rng is None:
            return {"cases": [[6, False, 1, 6], [12, True, 2, 6], [12, True, 1, 6], [6, None, None, 6]]}
        draw = lambda: int(rng.integers(2, 33))
        c, d, e, f = draw(), draw(), draw(), draw()
        return {"cases": [[c, False, 1, c], [d + draw(), True, 2, d], [e + draw(), True, 1, e], [f, None, None, f]]}

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


class ResidualBehaviour(Observed):
    name = "residual_behaviour"
    description = "Residual computes ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X))"

    def challenge(self, rng=None):
        """(num_channels, use_1x1conv, strides, input channels, side): an identity block, a stride-2
        projection to more channels at an even side, a stride-1 projection to more channels."""
        if rng is None:
            cases = [[4, False, 1, 4, 6], [6, True, 2, 3, 6], [6, True, 1, 3, 5]]
        else:
            c = int(rng.integers(2, 8))
            cases = [[c, False, 1, c, int(rng.integers(4, 8))],
                     [c + int(rng.integers(1, 4)), True, 2, c, 2 * int(rng.integers(2, 5))],
                     [c + int(rng.integers(1, 4)), True, 1, c, int(rng.integers(3, 7))]]
        return {"seed": secret_seed(rng), "cases": cases}

    def judge(self, challenge, observation):
        seed = challenge["seed"]
        for (c, p, s, c_in, side), got in zip(challenge["cases"], observation["outputs"], strict=True):
            x = canonical(seed, "input", (2, c_in, side, side))
            mistake = _first_match(got["output"], residual_outputs(x, seed, c, p, s, bias=bool(got["biases"])))
            what = residual_name(c, p, s)
            if mistake is False:
                fail(f"{what} does not compute ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X)). Check the "
                     "order of the layers, that the first 3x3 convolution uses the stride, and that the "
                     "shortcut is the input itself (or its 1x1 convolution).")
            expect(mistake is None, f"in {what}, {mistake}.")


# -------------------------------------------------------------------- stem

class StemStructure(Observed):
    name = "stem_structure"
    description = "make_stem is a 7x7/64 stride-2 convolution, BatchNorm, ReLU and 3x3 stride-2 max pooling"

    def challenge(self, rng=None):
        """A batch of images: the layers' settings are observed with the output shape they give."""
        if rng is None:
            return {"batch": 1, "side": 32}
        return {"batch": int(rng.integers(1, 9)), "side": int(rng.integers(16, 65))}

    def judge(self, challenge, found):
        batch, side = challenge["batch"], challenge["side"]
        quarter = walk.out_side(walk.out_side(side, 2), 2)
        want = [batch, 64, quarter, quarter]
        expect(found["shape"] == want, f"make_stem() on a batch of {batch} images of {side}x{side} gave "
                                       f"{tuple(found['shape'])}, expected {tuple(want)}.")
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


class StemBehaviour(Observed):
    name = "stem_behaviour"
    description = "make_stem applies convolution, then BatchNorm, then ReLU, then max pooling"

    def challenge(self, rng=None):
        return {"seed": secret_seed(rng), "side": 20 if rng is None else int(rng.integers(12, 25))}

    def judge(self, challenge, observation):
        seed, side = challenge["seed"], challenge["side"]
        x = canonical(seed, "input", (2, 1, side, side))
        mistake = _first_match(observation["output"], stem_outputs(x, seed, bias=bool(observation["biases"])))
        expect(mistake is not False, "the stem's output does not match MaxPool(ReLU(BatchNorm(Conv(X)))).")
        expect(mistake is None, f"{mistake}.")


# ------------------------------------------------------------ resnet_block

def _expected_units(channels, count, first_block):
    return [[channels, not first_block, 1 if first_block else 2]] + [[channels, False, 1]] * (count - 1)


def _describe_units(calls):
    return ", ".join(f"Residual({c}, use_1x1conv={p}, strides={s})" for c, p, s in calls) or "nothing"


class ResnetBlockUnits(Observed, ResnetBlockDemo):
    name = "resnet_block_units"
    description = "resnet_block builds the right Residual units in the right order"

    def challenge(self, rng=None):
        """(num_channels, num_residuals, first_block): first and later stages of several units, one
        called without first_block (None: the default), and a later stage of one unit."""
        if rng is None:
            return {"cases": [[64, 2, True], [128, 2, False], [32, 3, True], [48, 4, None], [8, 1, False]],
                    "side": 8}
        draw = lambda low, high: int(rng.integers(low, high))
        return {"cases": [[draw(2, 65), draw(2, 5), first] for first in (True, False, True, None)]
                + [[draw(2, 65), 1, False]], "side": 2 * draw(2, 7)}

    def judge(self, challenge, observation):
        for (channels, count, first), got in zip(challenge["cases"], observation["found"], strict=True):
            name = stage_name(channels, count, first)
            want = _expected_units(channels, count, bool(first))
            expect(got["calls"], "resnet_block should create its units with the Residual class.")
            expect(got["calls"] == want, f"{name} created {_describe_units(got['calls'])}; expected "
                                         f"{_describe_units(want)}. Only the first unit of a block that is "
                                         "not the first block changes the shape.")
            expect(got["children"] == count, f"the block returned by {name} should hold its {count} units as "
                                             f"its children, in order (found {got['children']}).")
            side = challenge["side"] if first else walk.out_side(challenge["side"], 2)
            expect(got["shape"] == [2, channels, side, side],
                   f"{name} gave output shape {tuple(got['shape'])} on an input of {challenge['side']}x"
                   f"{challenge['side']}, expected {(2, channels, side, side)}.")


# ---------------------------------------------------------------- resnet18

class Resnet18Assembly(Observed):
    name = "resnet18_assembly"
    description = ("resnet18 chains the stem, four stages of 64, 128, 256, 512 channels, "
                   "global average pooling and Dense")

    def challenge(self, rng=None):
        """Two batches of images, as (batch size, side)."""
        if rng is None:
            return {"inputs": [[2, 224], [2, 96]]}
        return {"inputs": [[int(rng.integers(1, 33)), int(rng.integers(32, 97))] for _ in range(2)]}

    def judge(self, challenge, got):
        want = [[64, 2, True], [128, 2, False], [256, 2, False], [512, 2, False]]
        expect(got["calls"] == want,
               f"resnet18 called resnet_block with {[tuple(c) for c in got['calls']] or 'nothing'}; expected "
               f"the four stages {[tuple(c) for c in want]} as (num_channels, num_residuals, first_block).")
        for (batch, side), shape in zip(challenge["inputs"], got["shapes"], strict=True):
            expect(shape == [batch, 10], f"resnet18() on a batch of {batch} images of {side}x{side} gave "
                                         f"{tuple(shape)}, expected ({batch}, 10).")
        expect(got["stems"] == [0], "resnet18 should begin with one stem, the one make_stem() returns, "
                                    "before the stages.")
        expect(got["global_pools"] == 1, "resnet18 should have one GlobalAvgPool2D layer after the stages.")
        expect(got["dense_units"] == 10, "resnet18 should end with a Dense layer of 10 units (one score per class).")
        expect(got["tail_is_pool_then_dense"] is True,
               "the global average pooling should come right before the final Dense layer.")
        expect(got["dense_bias"] is True, "the final Dense layer has no bias (use_bias=False). " + DEFAULTS)


class Resnet18NumClasses(Observed):
    name = "resnet18_num_classes"
    description = "resnet18(num_classes) sizes its output layer"

    def challenge(self, rng=None):
        if rng is None:
            return {"num_classes": 7, "batch": 3}
        return {"num_classes": int(rng.integers(2, 65)), "batch": int(rng.integers(1, 33))}

    def judge(self, challenge, observation):
        k, batch = challenge["num_classes"], challenge["batch"]
        expect(observation["shape"] == [batch, k], f"resnet18({k}) on a batch of {batch} gave "
                                                   f"{tuple(observation['shape'])}, expected ({batch}, {k}).")


class Resnet18Complete(Observed):
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
        """Two sides at which the stages' shapes are observed, and a seed for the weights and the
        input of side ``input`` at which the scores are compared. At 16x16 the last two stages
        run on 1x1 features, which keeps the reference cheap."""
        sides = [224, 96] if rng is None else [int(rng.integers(32, 97)) for _ in range(2)]
        return {"sides": sides, "seed": secret_seed(rng), "input": 16}

    def judge(self, challenge, got):
        for side, shapes in zip(challenge["sides"], got["shapes"], strict=True):
            q = walk.out_side(walk.out_side(side, 2), 2)
            want = [[1, c, walk.out_side(q, f), walk.out_side(q, f)] for c, f in zip(STAGE_CHANNELS, (1, 2, 4, 8))]
            missing = [tuple(w) for w in want if w not in shapes]
            expect(not missing, f"at a {side}x{side} input, no layer of your network outputs "
                                f"{', '.join(map(str, missing))}; the four stages should output "
                                f"{', '.join(str(tuple(w)) for w in want)}. " + self.PIECES)
        sizes = [(int(onp.prod(shape)), bool(trains)) for shape, trains in got["parameters"]]
        total, trainable = sum(n for n, _ in sizes), sum(n for n, trains in sizes if trains)
        counts = [total, trainable, total - trainable]
        no_bias = "" if got["biases"] is True else " Some of its convolutions or its Dense layer have no bias."
        expect(counts == RESNET18_COUNTS,
               f"your network has {counts[0]:,} parameters ({counts[1]:,} trainable, {counts[2]:,} not) "
               f"instead of {RESNET18_COUNTS[0]:,} ({RESNET18_COUNTS[1]:,} and {RESNET18_COUNTS[2]:,})."
               f"{no_bias} " + self.PIECES)
        expect(close(got["output"], resnet18_output(challenge["seed"], challenge["input"], bias=bool(got["biases"]))),
               "with fixed weights, your network's scores differ from those of ResNet-18 built as the "
               "notebook describes. " + self.PIECES)


PARTS = {part.name: part for part in [
    ResidualShapes(), ResidualStructure(), ResidualBehaviour(), StemStructure(), StemBehaviour(),
    ResnetBlockUnits(), Resnet18Assembly(), Resnet18NumClasses(), Resnet18Complete()]}

# The names the notebook's hidden-test cells call: hidden.<name>(obj).
globals().update({name: part.check for name, part in PARTS.items()})
