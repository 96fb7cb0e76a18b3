"""Hidden checks of the bottleneck notebook: the instructor's side.

The hidden-test cells of ``source/bottleneck`` call ``hidden.<part>(obj)``.
Each part here holds its challenge (the fixed one the notebook uses, or one
the batch grader draws secretly per submission) and its judge, with the
plain-NumPy references of the correct block, network and training step and
of common mistakes. What each part observes of the student's code is in
``autograder/sandboxed/observers/bottleneck.py``, the public side that runs
beside that code; this module is never bound into the sandbox. Every draw of
a challenge holds the same classes of case (strided and unstrided
projections, identity shortcuts, odd and even sizes...), only the values are
secret, so a verdict depends on the code and never on the draw.
"""
import math

import numpy as onp

from . import numpy_ops as ref
from ...sandboxed.observers import bottleneck as observers
from ...student.checks.bottleneck import (
    BOTTLENECK_UNSEEN, EXPANSION, PRESET_WEIGHT, UNREADABLE, BottleneckDemoShapes, JudgedPart, block_name,
    cross_entropy, diagnose_failed_run, fixed_shape_cases, judge_history, random_shape_cases, scores,
    trained_weights)
from ...student.parts import canonical, close, expect, fail, secret_seed

# (total, trainable, non-trainable) of small_resnet(10) with Gluon defaults; each class
# more or less adds or removes a row of the Dense layer: 512 weights and a bias.
SMALL_RESNET_COUNTS = (818_186, 813_450, 4_736)
PER_CLASS = 512 + 1
# Bottleneck units of small_resnet, as (num_channels, strides, use_projection).
SMALL_RESNET_UNITS = [(64, 1, True), (64, 1, False), (128, 2, True), (128, 1, False)]


def bottleneck_counts(c_in, num_channels, use_projection):
    """(total, trainable, non-trainable) of a correct Bottleneck on ``c_in`` channels."""
    c, out = num_channels, EXPANSION * num_channels
    conv = lambda i, o, k: i * o * k * k + o
    trainable = conv(c_in, c, 1) + conv(c, c, 3) + conv(c, out, 1) + 2 * (c + c + out)
    if use_projection:
        trainable += conv(c_in, out, 1)
    frozen = 2 * (c + c + out)
    return trainable + frozen, trainable, frozen


def counts_of(params):
    """(total, trainable, non-trainable) from recorded [[shape, frozen], ...]."""
    expect(len(params) <= 256, UNREADABLE)
    sizes = [(math.prod(int(n) for n in shape), frozen is True) for shape, frozen in params]
    total = sum(size for size, _ in sizes)
    frozen = sum(size for size, is_frozen in sizes if is_frozen)
    return [total, total - frozen, frozen]


# ------------------------------------------------- judging with canonical weights

def canonical_conv(seed, biases):
    """conv(shape, z, **kw) with the canonical weights of that shape, and a bias where the student's has one.

    Each shape's weights are made once per call of this function: judging costs little per submission."""
    made = {}

    def conv(shape, z, **kwargs):
        shape = tuple(shape)
        if shape not in made:
            bias = canonical(seed, "conv.bias", shape[:1]) if biases.get(shape, True) else None
            made[shape] = canonical(seed, "conv.weight", shape), bias
        return ref.conv2d(z, *made[shape], **kwargs)
    return conv


def canonical_bn(seed, n):
    c = (int(n),)
    params = [canonical(seed, kind, c) for kind in ("bn.gamma", "bn.beta", "bn.mean", "bn.var")]
    return lambda z: ref.batch_norm(z, *params)


def biases_of(convs):
    """{weight shape: has a bias} (the first convolution of each shape decides)."""
    found = {}
    for conv in convs:
        found.setdefault(tuple(int(n) for n in conv["shape"]), bool(conv["bias"]))
    return found


def match(got, candidates):
    """(True, None) when ``got`` matches the correct candidate (listed first as
    (None, value)), (False, message) for a diagnosed mistake, (False, None) when nothing matches."""
    for mistake, want in candidates:
        if close(got, want):
            return mistake is None, mistake
    return False, None


def _other_than(rng, low, high, *excluded):
    return int(rng.choice([n for n in range(low, high) if n not in excluded]))


# --------------------------------------------------------------- Bottleneck

class BottleneckShapes(BottleneckDemoShapes):
    name = "bottleneck_shapes"
    description = "Bottleneck gives the right output shape for other channel counts, strides and inputs"
    kinds = [(True, 1), (True, 2), (False, 1), (True, 2), (True, 1)]

    def challenge(self, rng=None):
        if rng is None:
            return {"cases": fixed_shape_cases(BOTTLENECK_UNSEEN)}
        return {"cases": random_shape_cases(rng, self.kinds)}

    observe = staticmethod(observers.observe_shapes)


class BottleneckStructure(JudgedPart):
    name = "bottleneck_structure"
    description = ("Bottleneck holds 1x1 -> 3x3 -> 1x1 (4x) convolutions, three BatchNorms, "
                   "and a strided 1x1 projection exactly when use_projection=True")

    def challenge(self, rng=None):
        # (num_channels, strides, use_projection, input channels); the input channel
        # counts make every convolution's weight shape unique, so roles are found by shape.
        # A case with strides None calls Bottleneck(c): the defaults, stride 1 with a projection.
        if rng is None:
            return {"cases": [[4, 1, True, 6], [4, 2, True, 6], [3, 2, True, 12], [4, 1, False, 16],
                              [2, 1, False, 8], [3, None, True, 5]]}
        cases = []
        for proj, s in [(True, 1), (True, 2), (True, 2), (False, 1), (False, 1), (True, None)]:
            c = int(rng.integers(2, 9))
            c_in = _other_than(rng, 1, 25, c, EXPANSION * c) if proj else EXPANSION * c
            cases.append([c, s, proj, c_in])
        return {"cases": cases}

    observe = staticmethod(observers.observe_structure)
    def decide(self, challenge, observation):
        for (c, s, proj, c_in), got in zip(challenge["cases"], observation["found"], strict=True):
            self._decide_one(c, s, proj, c_in, got)

    @staticmethod
    def _decide_one(c, s, proj, c_in, got):
        name = f"{block_name(c, s, proj)} on a {c_in}-channel input"
        if s is None:
            name += " (the defaults: strides=1, use_projection=True)"
            s = 1
        out = EXPANSION * c
        if got["error"] is not None:
            diagnose_failed_run(got["layers"], c, s, proj, name, got["error"])
        convs = got["layers"]["convs"]
        find = lambda shape: [i for i, conv in enumerate(convs) if conv["shape"] == list(shape)]
        expect(len(convs) == (4 if proj else 3),
               f"{name} should hold {4 if proj else 3} convolutions (1x1, 3x3, 1x1"
               f"{' and the 1x1 projection' if proj else ''}), found {len(convs)}.")
        three = [conv for conv in convs if conv["kernel"] == [3, 3]]
        expect(len(three) == 1, f"{name} should hold exactly one 3x3 convolution, found {len(three)}; "
                                "the other convolutions are 1x1.")
        mid = three[0]
        expect(mid["shape"] == [c, c, 3, 3],
               f"the 3x3 convolution of {name} should map {c} channels to {c} (num_channels), "
               f"its weight has shape {tuple(mid['shape'])}.")
        expect(mid["pad"] == [1, 1], f"the 3x3 convolution of {name} needs padding=1.")
        expect(mid["stride"] == [1, 1],
               f"the 3x3 convolution of {name} should use stride 1: in this block the stride "
               "belongs to the first 1x1 convolution (and the projection).")
        reduce = find((c, c_in, 1, 1))
        expect(reduce, f"{name} should start with a 1x1 convolution from the {c_in} input channels to "
                       f"{c} (num_channels) channels.")
        expect(convs[reduce[0]]["stride"] == [s, s],
               f"the first 1x1 convolution of {name} should use strides={s}.")
        expand = find((out, c, 1, 1))
        if not expand:
            narrow = find((c, c, 1, 1))
            fail(f"{name} should end its main path with a 1x1 convolution that expands {c} channels "
                 f"to 4 * num_channels = {out}"
                 + (f"; yours keeps {c} channels." if narrow else "."))
        expect(convs[expand[0]]["stride"] == [1, 1],
               f"the last 1x1 convolution of {name} should use stride 1.")
        projection = [i for i in find((out, c_in, 1, 1)) if i != expand[0]]
        if proj:
            expect(projection, f"{name} should have a 1x1 projection convolution on the shortcut, "
                               f"from {c_in} to {out} channels.")
            expect(convs[projection[0]]["stride"] == [s, s],
                   f"the projection shortcut of {name} should use strides={s}, like the first 1x1 "
                   "convolution, so that both branches have the same height and width.")
        else:
            expect(not projection, f"{name} should have no projection: with use_projection=False "
                                   "the shortcut is the input itself.")
        bns = len(got["layers"]["batch_norms"])
        expect(bns == 3 or not (proj and bns == 4),
               f"{name} has a BatchNorm on the projection shortcut; in this block, as in the seed, "
               "the projection is a plain 1x1 convolution.")
        expect(bns == 3, f"{name} should hold three BatchNorm layers (one after each convolution "
                         f"of the main path), found {bns}.")
        want = list(bottleneck_counts(c_in, c, proj))
        counts = counts_of(got["params"])
        expect(counts == want, f"{name} has {counts[0]} parameters ({counts[1]} trainable), expected {want[0]} "
                               f"({want[1]} trainable). Keep Gluon's defaults (convolutions with biases, "
                               "plain nn.BatchNorm()).")


def bottleneck_outputs(x, seed, biases, c_in, c, proj):
    """The correct output of Bottleneck (stride 1) and those of common mistakes, with canonical weights.

    Each convolution a candidate shares with another is computed once."""
    out = EXPANSION * c
    conv = canonical_conv(seed, biases)
    M = lambda z: conv((c, c, 3, 3), z, pad=1)
    E = lambda z: conv((out, c, 1, 1), z)
    Bc, Bo = canonical_bn(seed, c), canonical_bn(seed, out)
    r = ref.relu
    reduced = conv((c, c_in, 1, 1), x)
    S = conv((out, c_in, 1, 1), x) if proj else x
    middle = Bc(M(r(Bc(reduced))))
    expanded = E(r(middle))
    main = Bo(expanded)
    before_add = "ReLU is applied to the main path before the shortcut is added; add first, then apply ReLU"
    candidates = [
        (None, r(main + S)),
        ("the final ReLU is missing: apply ReLU after adding the shortcut", main + S),
        (before_add, r(main) + S),
        (before_add, r(r(main) + S)),
        ("the shortcut is not added: the output must be ReLU(main path + shortcut)", r(main)),
        ("there is no ReLU after the second BatchNorm (between the 3x3 and the last 1x1 convolution)",
         r(Bo(E(middle)) + S)),
        ("there is no ReLU after the first BatchNorm (between the first 1x1 and the 3x3 convolution)",
         r(Bo(E(r(Bc(M(Bc(reduced)))))) + S)),
        ("ReLU comes before BatchNorm; each convolution is followed by BatchNorm, then ReLU",
         r(Bo(E(Bc(r(M(Bc(r(reduced))))))) + S)),
        ("the shortcut is added before the last BatchNorm; add it after BatchNorm, right before the final ReLU",
         r(Bo(expanded + S))),
    ]
    if proj:
        candidates.append(("a BatchNorm is applied to the projection shortcut; in this block, as in the "
                           "seed, the projection is a plain 1x1 convolution", r(main + Bo(S))))
    return candidates


class BottleneckBehaviour(JudgedPart):
    name = "bottleneck_behaviour"
    description = "Bottleneck computes ReLU(BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(X)))))))) + shortcut(X))"

    # Stride 1 only: the place of the stride is judged by bottleneck_structure,
    # so a wrong stride costs those marks and not these.
    def challenge(self, rng=None):
        # (num_channels, use_projection, input channels, side): a projection from other channel
        # counts, an identity shortcut, projections from num_channels and from 4 * num_channels.
        if rng is None:
            cases = [[3, True, 5, 6], [3, False, 12, 6], [4, True, 4, 6], [2, True, 8, 6]]
        else:
            c = [int(n) for n in rng.integers(2, 6, size=4)]
            side = lambda: int(rng.integers(4, 8))
            cases = [[c[0], True, _other_than(rng, 1, 13, c[0], EXPANSION * c[0]), side()],
                     [c[1], False, EXPANSION * c[1], side()],
                     [c[2], True, c[2], side()],
                     [c[3], True, EXPANSION * c[3], side()]]
        return {"seed": secret_seed(rng), "cases": cases}

    observe = staticmethod(observers.observe_behaviour)

    def decide(self, challenge, observation):
        seed = challenge["seed"]
        for (c, proj, c_in, side), got in zip(challenge["cases"], observation["outputs"], strict=True):
            name = f"{block_name(c, 1, proj)} on a {c_in}-channel input"
            if "error" in got:
                diagnose_failed_run(got["layers"], c, 1, proj, name, got["error"])
            out = EXPANSION * c
            needed = [(c, c_in, 1, 1), (c, c, 3, 3), (out, c, 1, 1)] + ([(out, c_in, 1, 1)] if proj else [])
            biases = biases_of(got["layers"]["convs"])
            missing = [shape for shape in needed if shape not in biases]
            expect(not missing, f"{name} lacks convolutions with weight shapes {missing} "
                                "(out, in, kernel, kernel); see the exercise for the layers it needs.")
            expect({c, out} <= {int(n) for n in got["layers"]["batch_norms"]},
                   f"{name} should hold BatchNorm layers over {c} and over {out} channels.")
            x = canonical(seed, "input", (2, c_in, side, side))
            ok, mistake = match(got["output"], bottleneck_outputs(x, seed, biases, c_in, c, proj))
            if ok:
                continue
            if mistake:
                fail(f"in {name}, {mistake}.")
            fail(f"{name} does not compute ReLU(main path + shortcut(X)) with main path "
                 "conv1x1 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1 -> BN. Check the order of the "
                 "layers and that the shortcut starts from the block's input X (or its 1x1 projection).")


# ------------------------------------------------------------- small_resnet

def _describe(calls):
    return ", ".join(block_name(*call) for call in calls) or "nothing"


class SmallResnetAssembly(JudgedPart):
    name = "small_resnet_assembly"
    description = "small_resnet chains a 3x3 stem, the four bottleneck blocks, global average pooling and Dense"

    def challenge(self, rng=None):
        # The first input initialises the layers; the sides are one even, one odd and one drawn.
        if rng is None:
            return {"inputs": [[2, 3, 32, 32], [1, 3, 32, 32], [3, 3, 16, 16]], "classes_input": [3, 3, 32, 32],
                    "num_classes": 7}
        sides = [2 * int(rng.integers(4, 21)), 2 * int(rng.integers(4, 20)) + 1, int(rng.integers(8, 41))]
        batch = lambda: int(rng.integers(1, 4))
        return {"inputs": [[batch(), 3, side, side] for side in sides],
                "classes_input": [batch(), 3, sides[2], sides[2]],
                "num_classes": _other_than(rng, 2, 31, 10)}

    observe = staticmethod(observers.observe_assembly)

    def decide(self, challenge, got):
        expect(got["accepts_num_classes"] is True, "small_resnet should accept num_classes (default 10).")
        calls = [[int(c), s if isinstance(s, int) else [int(n) for n in s], bool(p)] for c, s, p in got["calls"]]
        want = [list(unit) for unit in SMALL_RESNET_UNITS]
        expect(calls, "small_resnet should create its blocks with the Bottleneck class.")
        expect(calls == want,
               f"small_resnet created {_describe(calls)}; expected {_describe(want)}. "
               "A block needs the projection whenever its input does not already have 4 * num_channels "
               "channels and the same size as its output.")
        if "run_error" in got:
            fail(f"your code raised {got['run_error']}. Run your code on its own to see the full error.")
        layers = got["layers"]
        positions = [next((i for i, leaf in enumerate(layers)
                           if leaf["kind"] == "block" and leaf["index"] == k), None) for k in range(len(calls))]
        expect(None not in positions and positions == sorted(positions),
               "small_resnet should hold its four Bottleneck blocks inside the network, in the order "
               "it applies them.")
        convs = [(i, leaf) for i, leaf in enumerate(layers) if leaf["kind"] == "conv"]
        expect(len(convs) == 1, f"besides the blocks, small_resnet should hold one convolution (the stem), "
                                f"found {len(convs)}.")
        at, stem = convs[0]
        expect(stem["kernel"] == [3, 3] and stem["channels"] == 64
               and stem["stride"] == [1, 1] and stem["pad"] == [1, 1],
               "the stem convolution should be 3x3 with 64 output channels, stride 1 and padding 1: "
               "32x32 images are small, so unlike ImageNet's 7x7 stride-2 stem it keeps the size.")
        expect(at < min(positions), "the stem should come before the bottleneck blocks.")
        bns = sum(leaf["kind"] == "batch_norm" for leaf in layers)
        expect(bns == 1, f"besides the blocks, small_resnet should hold one BatchNorm (after the stem "
                         f"convolution), found {bns}.")
        expect(not any(leaf["kind"] == "max_pool" for leaf in layers),
               "the small CIFAR-10 network has no max pooling: the images are only 32x32.")
        pools = [i for i, leaf in enumerate(layers) if leaf["kind"] == "global_avg_pool"]
        expect(len(pools) == 1, "small_resnet should have one GlobalAvgPool2D layer after the blocks.")
        expect(layers[-1]["kind"] == "dense" and layers[-1]["units"] == 10,
               "small_resnet should end with a Dense layer of 10 units (one score per class).")
        expect(pools[0] > max(positions), "the global average pooling comes after the blocks.")
        for shape, out in zip(challenge["inputs"], got["shapes"], strict=True):
            if isinstance(out, dict):
                fail(f"your code raised {out['error']}. Run your code on its own to see the full error.")
            expect(out == [shape[0], 10], f"small_resnet() on an input of shape {tuple(shape)} gave output "
                                          f"shape {tuple(out)}, expected {(shape[0], 10)}.")
        k, out, n = challenge["num_classes"], got["num_classes_shape"], challenge["classes_input"][0]
        expect(out == [n, k], f"small_resnet({k}) on a batch of {n} gave output shape {tuple(out)}, "
                              f"expected {(n, k)}.")


def _softmax(z):
    e = onp.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SmallResnetBehaviour(JudgedPart):
    name = "small_resnet_behaviour"
    description = ("small_resnet's stem computes ReLU(BatchNorm(conv3x3(X))) and the net ends with plain "
                   "class scores")

    def challenge(self, rng=None):
        return {"seed": secret_seed(rng), "batch": 2 if rng is None else int(rng.integers(1, 4)),
                "side": 8 if rng is None else int(rng.integers(4, 11))}

    @staticmethod
    def _input(challenge):
        side = challenge["side"]
        return canonical(challenge["seed"], "input", (challenge["batch"], 3, side, side))

    observe = staticmethod(observers.observe_small_behaviour)

    def decide(self, challenge, got):
        seed, layers = challenge["seed"], got["layers"]
        stems = [leaf for leaf in layers if leaf["kind"] == "conv" and leaf["kernel"] == [3, 3]]
        bns = [leaf for leaf in layers if leaf["kind"] == "batch_norm"]
        denses = [leaf for leaf in layers if leaf["kind"] == "dense"]
        expect(len(stems) == 1 and len(bns) == 1 and len(denses) == 1,
               "small_resnet should hold one 3x3 stem convolution, one BatchNorm and one Dense layer "
               "besides its Bottleneck blocks.")
        expect(stems[0]["shape"] == [64, 3, 3, 3], "the stem convolution should map the 3 colour channels to 64.")
        blocks = [got["blocks"][leaf["index"]] for leaf in layers if leaf["kind"] == "block"]
        dense = denses[0]
        d_shape = tuple(int(n) for n in dense["shape"])
        mismatch = ("the output does not match Dense(GlobalAvgPool(blocks(ReLU(BatchNorm(conv3x3(X)))))). "
                    "Check the order of the stem's layers and that the blocks are applied one after another.")
        # The reference is built from these recorded shapes: bound them, so that no
        # observation can make this process draw huge arrays.
        shapes = [d_shape] + [tuple(int(n) for n in block["shape"]) for block in blocks]
        expect(len(blocks) <= 16 and all(len(shape) in (2, 4) and 1 <= min(shape) and max(shape) <= 4096
                                         and onp.prod(shape) <= 1 << 22 for shape in shapes), mismatch)
        d_weight = canonical(seed, "dense.weight", d_shape)
        d_bias = canonical(seed, "dense.bias", d_shape[:1]) if dense["bias"] else onp.zeros(d_shape[0])
        x = self._input(challenge)
        conv = canonical_conv(seed, {(64, 3, 3, 3): bool(stems[0]["bias"])})
        bn = canonical_bn(seed, 64)

        # The spies are strided 1x1 convolutions, affine per pixel: subsampling first, then averaging
        # over the pixels left and applying each spy's affine map to the means computes the same.
        maps = []
        for block in blocks:
            shape = tuple(int(n) for n in block["shape"])
            bias = canonical(seed, "conv.bias", shape[:1]) if block["bias"] else 0
            maps.append((onp.ascontiguousarray(canonical(seed, "conv.weight", shape).reshape(shape[0], -1).T), bias))

        def rest(z):
            for block in blocks:
                z = z[:, :, ::int(block["stride"][0]), ::int(block["stride"][1])]
            z = z.mean(axis=(2, 3))
            for weight, bias in maps:
                z = z @ weight + bias
            return ref.dense(z, d_weight, d_bias)

        stem = conv((64, 3, 3, 3), x, stride=1, pad=1)
        try:
            right = rest(ref.relu(bn(stem)))
            candidates = [
                (None, right),
                ("the stem applies ReLU before BatchNorm; the order is convolution, BatchNorm, ReLU",
                 rest(bn(ref.relu(stem)))),
                ("the stem has no ReLU after its BatchNorm", rest(bn(stem))),
                ("the network applies softmax to its output; in Gluon the softmax belongs to the loss "
                 "(SoftmaxCrossEntropyLoss), so the network should return plain scores", _softmax(right)),
            ]
        except ValueError:  # the blocks' shapes do not chain
            fail(mismatch)
        ok, mistake = match(got["output"], candidates)
        if not ok:
            fail(mistake + "." if mistake else mismatch)


class SmallResnetCounts(JudgedPart):
    """Counted with spies in place of the student's blocks: the judge adds what a correct
    Bottleneck holds for each block's recorded arguments and input channels, so a bug in
    the block costs only the block's marks. The number of classes is drawn secretly."""
    name = "small_resnet_counts"
    description = ("small_resnet has 818,186 parameters (813,450 trainable, 4,736 not) with correct "
                   "Bottleneck blocks and 10 classes, 513 more per extra class")

    def challenge(self, rng=None):
        if rng is None:
            return {"input": [2, 3, 32, 32], "num_classes": 10}
        side = int(rng.integers(16, 41))
        return {"input": [int(rng.integers(1, 9)), 3, side, side], "num_classes": _other_than(rng, 2, 101, 10)}

    observe = staticmethod(observers.observe_counts)

    def decide(self, challenge, got):
        x_shape, k = tuple(challenge["input"]), challenge["num_classes"]
        want = [x_shape[0], k]
        expect(got["shape"] == want, f"small_resnet({k}) on a batch of {x_shape[2]}x{x_shape[3]} images gave "
                                     f"output shape {tuple(got['shape'])}, expected {tuple(want)}.")
        counts = counts_of(got["params"])
        expect(len(got["blocks"]) <= 64, UNREADABLE)
        for c, s, proj, c_in in got["blocks"]:
            expect(proj is True or (int(c_in) == EXPANSION * int(c) and s == 1),
                   f"built from correct Bottleneck blocks, your network fails on a {x_shape} batch: "
                   "the shortcut of some block does not match its main path. Check each block's "
                   "use_projection and strides against the table.")
            counts = [a + b for a, b in zip(counts, bottleneck_counts(int(c_in), int(c), proj is True))]
        want = [n + PER_CLASS * (k - 10) if i < 2 else n for i, n in enumerate(SMALL_RESNET_COUNTS)]
        expect(counts == want,
               f"built from correct Bottleneck blocks, small_resnet({k}) has {counts[0]:,} parameters ({counts[1]:,} "
               f"trainable, {counts[2]:,} not); expected {want[0]:,} ({want[1]:,} and {want[2]:,}). Check the "
               "blocks' arguments and keep Gluon's default Conv2D, BatchNorm and Dense settings.")


# --------------------------------------------------------------- train_adam

class TrainAdamBehaviour(JudgedPart):
    name = "train_adam_behaviour"
    description = "train_adam takes Adam steps of size lr and learns easy data"

    def challenge(self, rng=None):
        if rng is None:
            return {"seed": secret_seed(None), "features": 4, "classes": 3,
                    "step": {"n_train": 32, "n_test": 16, "lr": 0.01},
                    "learn": {"n_train": 96, "n_test": 48, "batch_size": 16, "epochs": 6, "lr": 0.05}}
        n_step = int(rng.integers(16, 41))
        return {"seed": secret_seed(rng), "features": int(rng.integers(4, 7)), "classes": int(rng.integers(3, 5)),
                "step": {"n_train": n_step, "n_test": int(rng.integers(8, 25)),
                         "lr": float(rng.uniform(0.005, 0.03))},
                "learn": {"n_train": int(rng.integers(80, 121)), "n_test": int(rng.integers(32, 65)),
                          "batch_size": int(rng.integers(12, 21)), "epochs": int(rng.integers(5, 8)),
                          "lr": float(rng.uniform(0.04, 0.08))}}

    observe = staticmethod(observers.observe_train_behaviour)

    def decide(self, challenge, got):
        features, classes = challenge["features"], challenge["classes"]
        lr = challenge["step"]["lr"]
        judge_history(got["step"]["history"], 1)
        expect(got["step"]["first"] is not None, "train_adam never called the network in training mode "
                                                 "(inside autograd.record()).")
        first = trained_weights(got["step"]["first"], classes, features)
        after = trained_weights(got["step"]["after"], classes, features)
        moved = onp.concatenate([(a - b).ravel() for a, b in zip(after, first, strict=True)])
        step = onp.abs(moved) / lr
        expect(step.max() > 1e-3, "the parameters did not change during training: call l.backward() and "
                                  "trainer.step(batch_size) for every batch.")
        near = onp.mean(onp.abs(step - 1) < 0.2)
        expect(near > 0.9, f"after one Adam step with learning rate {lr:.3g} every parameter should have moved "
                           f"by about {lr:.3g}; yours moved by between {step.min() * lr:.2g} and "
                           f"{step.max() * lr:.2g} (a median of {onp.median(step) * lr:.2g}). Use "
                           "gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr}).")
        # Adam's first step goes against the sign of the gradient of the batch's cross-entropy.
        (X, y), _ = observers.training_data(challenge, "step")
        error = _softmax(scores(X, *first)) - onp.eye(classes)[y]
        gradient = onp.concatenate([(error.T @ X).ravel(), error.sum(axis=0)])
        clear = onp.abs(gradient) > 1e-4 * len(y)
        against = onp.mean(onp.sign(moved[clear]) == -onp.sign(gradient[clear])) if clear.any() else 1.0
        expect(against > 0.9, "the first update did not move the parameters against the gradient of the "
                              "cross-entropy loss on the batch: compute l = loss(net(X), y) with "
                              "gluon.loss.SoftmaxCrossEntropyLoss() inside autograd.record(), then call "
                              "l.backward() and trainer.step for every batch.")

        learn = challenge["learn"]
        values = judge_history(got["learn"]["history"], learn["epochs"])
        expect(values["train_loss"][-1] < values["train_loss"][0],
               f"the training loss did not fall over {learn['epochs']} epochs on easy data: "
               f"{values['train_loss']}.")
        expect(values["train_acc"][-1] > 0.8,
               f"the training accuracy reached only {values['train_acc'][-1]:.2f} on easy data.")


class TrainAdamSteps(JudgedPart):
    """Steps 1 and 5 of the exercise, checked exactly.

    One epoch at learning rate 0: the weights the loop initialised are the
    weights of every batch, so the judge recomputes the epoch's mean loss per
    example and fraction correct from the recorded first weights and the data.
    The last batch is smaller than the others, so averaging the batches' means
    (or dividing a sum by the number of batches) gives other numbers; and since
    the fraction correct is never 0 or 1 (see ``observers.training_data``) and
    the number of examples is prime to the last batch's size, no batch's own
    fraction equals the epoch's, whatever the weights Xavier drew."""
    name = "train_adam_steps"
    description = ("train_adam initialises net with init.Xavier() (force_reinit=True) and reports the mean "
                   "training loss per example and the fraction of correct predictions")

    def challenge(self, rng=None):
        if rng is None:
            return {"seed": secret_seed(None), "features": 5, "classes": 3, "n_train": 53, "n_test": 20,
                    "batch_size": 16}
        batch, full = int(rng.integers(8, 17)), int(rng.integers(2, 5))
        last = int(rng.integers(1, batch // 2 + 1))
        while math.gcd(batch * full + last, last) != 1:  # 1 always is
            last = int(rng.integers(1, batch // 2 + 1))
        return {"seed": secret_seed(rng), "features": int(rng.integers(4, 7)), "classes": int(rng.integers(2, 5)),
                "n_train": batch * full + last, "n_test": int(rng.integers(8, 25)), "batch_size": batch}

    observe = staticmethod(observers.observe_train_steps)

    def decide(self, challenge, got):
        features, classes = challenge["features"], challenge["classes"]
        values = judge_history(got["history"], 1)
        expect(got["first"] is not None, "train_adam never called the network in training mode "
                                         "(inside autograd.record()).")
        weight, bias = trained_weights(got["first"], classes, features)
        expect(not onp.all(weight == onp.float32(PRESET_WEIGHT)),
               "train_adam trained the network with the weights it came with: initialise it first, with "
               "net.initialize(init.Xavier(), ctx=device, force_reinit=True). Without force_reinit=True a "
               "network that was already initialised keeps its old weights.")
        # Xavier's default: uniform on [-bound, bound] ('avg', magnitude 3). With at least 8 weights,
        # a correct draw has none above 0.2 * bound with probability 0.2 ** 8, about 3e-6.
        bound = onp.sqrt(6 / (features + classes))
        expect(onp.all(onp.abs(weight) <= bound * (1 + 1e-5)) and onp.abs(weight).max() >= 0.2 * bound
               and onp.all(bias == 0),
               f"the network was not initialised with init.Xavier(): for this layer Xavier draws the weights "
               f"uniformly from [-{bound:.3f}, {bound:.3f}] and sets the biases to 0; the weights your loop "
               f"started from lie in [{weight.min():.3g}, {weight.max():.3g}]. Use "
               "net.initialize(init.Xavier(), ctx=device, force_reinit=True).")
        (X, y), _ = observers.training_data(challenge, "steps")
        z = scores(X, weight, bias)
        losses = cross_entropy(z, y)
        hits = (z.argmax(axis=1) == y).astype(float)
        ranked = onp.sort(z, axis=1)
        ties = int(onp.sum(ranked[:, -1] - ranked[:, -2] < 1e-4))  # float32 may pick either class
        n, size = len(y), challenge["batch_size"]
        batches = onp.array_split(onp.random.default_rng(n).permutation(n), range(size, n, size))
        loss, accuracy = float(losses.mean()), float(hits.mean())
        if abs(values["train_loss"][0] - loss) > 1e-4 * max(1.0, loss):
            fail(_epoch_mistake("train_loss", values["train_loss"][0], loss, losses, batches)
                 + " Sum the per-example losses of every batch over the epoch and divide by the number of "
                   "examples (not of batches).")
        if abs(values["train_acc"][0] - accuracy) > ties / n + 1e-9:
            fail(_epoch_mistake("train_acc", values["train_acc"][0], accuracy, hits, batches)
                 + " Count the correct predictions (y_hat.argmax(axis=1) equal to y) over the epoch and "
                   "divide by the number of examples.")


def _epoch_mistake(key, got, want, per_example, batches):
    """What is wrong with an epoch's reported figure, named when it is a usual slip."""
    what = "mean loss per example" if key == "train_loss" else "fraction of correct predictions"
    said = f"history['{key}'][0] is {got:.6g}, but the network's {what} over the epoch is {want:.6g}"
    slips = [("the mean of the batches' means, and the last batch is smaller than the others",
              onp.mean([per_example[b].mean() for b in batches])),
             ("the sum over the epoch divided by the number of batches", per_example.sum() / len(batches)),
             ("the figure of the last batch alone", per_example[batches[-1]].mean())]
    for slip, value in slips:
        if abs(got - value) <= 1e-4 * max(1.0, abs(value)):
            return f"{said}: yours looks like {slip}."
    return said + "."


PARTS = {part.name: part for part in [
    BottleneckShapes(), BottleneckStructure(), BottleneckBehaviour(),
    SmallResnetAssembly(), SmallResnetBehaviour(), SmallResnetCounts(), TrainAdamBehaviour(), TrainAdamSteps()]}

# The names the notebook's hidden-test cells call: hidden.<name>(obj).
globals().update({name: part.check for name, part in PARTS.items()})

