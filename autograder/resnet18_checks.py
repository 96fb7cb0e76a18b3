"""Checks for the ResNet-18 notebook (``source/resnet18``).

Each exercise is judged on its own: where an exercise builds on an earlier
one (``resnet_block`` uses ``Residual``, ``resnet18`` uses ``make_stem`` and
``resnet_block``), the check swaps the earlier piece for a small stand-in
that records how it was called, so a bug in ``Residual`` costs only the
``Residual`` marks. Behaviour is judged by computing the expected output in
plain NumPy from the weights the student's layers hold (see numpy_ops).
"""
import contextlib
import inspect
import io
import re

import numpy as onp
from mxnet import autograd, gluon, np as mnp

from . import gluon_walk as walk
from . import numpy_ops as ref
from .checking import check, expect, fail

RESNET18_COUNTS = (11_186_186, 11_178_378, 7_808)
STAGE_CHANNELS = (64, 128, 256, 512)


def _run(block, shape, seed=0):
    """Initialise ``block`` and push a random batch of ``shape`` through it."""
    block.initialize(force_reinit=True)
    x = mnp.array(onp.random.default_rng(seed).normal(size=shape), dtype="float32")
    with autograd.predict_mode():
        return block(x)


def _shape(value):
    return tuple(int(n) for n in value.shape)


def _expect_shape(got, want, what):
    expect(got == want, f"{what} gave output shape {got}, expected {want}.")


@contextlib.contextmanager
def _replaced(function, **stand_ins):
    """Temporarily rebind names in the namespace ``function`` looks its globals up in."""
    space = getattr(function, "__globals__", None)
    if space is None:
        yield
        return
    saved = {name: space[name] for name in stand_ins if name in space}
    space.update(stand_ins)
    try:
        yield
    finally:
        for name in stand_ins:
            space.pop(name, None)
        space.update(saved)


# ----------------------------------------------------------------- Residual

def _build_residual(Residual, channels, use_1x1conv, strides):
    try:
        return Residual(channels, use_1x1conv=use_1x1conv, strides=strides)
    except TypeError as error:
        fail(f"Residual({channels}, use_1x1conv={use_1x1conv}, strides={strides}) could not be "
             f"created ({error}). Keep the signature Residual(num_channels, use_1x1conv=False, strides=1).")


RESIDUAL_DEMOS = [((3, False, 1), (4, 3, 6, 6), (4, 3, 6, 6)),
                  ((6, True, 2), (4, 3, 6, 6), (4, 6, 3, 3))]
RESIDUAL_UNSEEN = [((5, False, 1), (2, 5, 9, 9), (2, 5, 9, 9)),
                   ((10, True, 1), (2, 4, 7, 7), (2, 10, 7, 7)),
                   ((16, True, 2), (3, 8, 9, 9), (3, 16, 5, 5)),
                   ((8, True, 2), (1, 8, 8, 8), (1, 8, 4, 4))]


def _residual_shapes(Residual, cases):
    for (channels, proj, strides), x_shape, want in cases:
        blk = _build_residual(Residual, channels, proj, strides)
        got = _shape(_run(blk, x_shape))
        _expect_shape(got, want, f"Residual({channels}, use_1x1conv={proj}, strides={strides}) "
                                 f"on an input of shape {x_shape}")


@check("Residual keeps the shape, or changes it with use_1x1conv=True and strides=2")
def residual_demo_shapes(Residual):
    _residual_shapes(Residual, RESIDUAL_DEMOS)


@check("Residual gives the right output shape for other channel counts and strides")
def residual_shapes(Residual):
    _residual_shapes(Residual, RESIDUAL_UNSEEN)


@check("Residual has two 3x3 convolutions, two batch norms, and a 1x1 convolution only when asked")
def residual_structure(Residual):
    for channels, proj, strides, x_shape in [(6, False, 1, (1, 6, 5, 5)),
                                             (12, True, 2, (1, 6, 8, 8)),
                                             (12, True, 1, (1, 6, 8, 8))]:
        name = f"Residual({channels}, use_1x1conv={proj}, strides={strides})"
        blk = _build_residual(Residual, channels, proj, strides)
        _run(blk, x_shape)
        convs = walk.convs(blk)
        three = [c for c in convs if walk.kernel(c) == (3, 3)]
        ones = [c for c in convs if walk.kernel(c) == (1, 1)]
        expect(len(three) == 2, f"{name} should contain two 3x3 convolutions, found {len(three)}.")
        expect(len(ones) == (1 if proj else 0),
               f"{name} should contain {'one' if proj else 'no'} 1x1 convolution, found {len(ones)}. "
               "The 1x1 convolution belongs on the shortcut, and only when use_1x1conv=True.")
        expect(len(convs) == len(three) + len(ones),
               f"{name} contains convolutions with other kernel sizes; use 3x3 on the main path.")
        expect(len(walk.batch_norms(blk)) == 2,
               f"{name} should contain two BatchNorm layers, found {len(walk.batch_norms(blk))}.")
        for c in three:
            expect(walk.padding(c) == (1, 1), f"the 3x3 convolutions in {name} need padding=1.")
            expect(c._kwargs["num_filter"] == channels,
                   f"every convolution in {name} should have {channels} output channels.")
        for c in ones:
            expect(walk.stride(c) == (strides, strides),
                   f"the 1x1 convolution in {name} should use strides={strides}, like the first 3x3 one.")
            expect(c._kwargs["num_filter"] == channels,
                   f"the 1x1 convolution in {name} should have {channels} output channels.")


def _set_residual_weights(blk, channels, rng):
    """Give the block known weights; equal-shaped layers get equal values so
    that the check does not need to know which one is 'first'."""
    params = {}
    for conv in walk.convs(blk):
        w_shape = conv.weight.shape
        key = ("conv", w_shape)
        if key not in params:
            fan_in = onp.prod(w_shape[1:])
            params[key] = (rng.normal(size=w_shape) / onp.sqrt(fan_in),
                           rng.normal(scale=0.1, size=w_shape[0]))
        weight, bias = params[key]
        walk.put(conv.weight, weight)
        if conv.bias is not None:
            walk.put(conv.bias, bias)
    bn_values = (rng.uniform(0.5, 1.5, channels), rng.normal(scale=0.5, size=channels),
                 rng.normal(scale=0.2, size=channels), rng.uniform(0.5, 1.5, channels))
    for bn in walk.batch_norms(blk):
        for param, value in zip((bn.gamma, bn.beta, bn.running_mean, bn.running_var), bn_values):
            walk.put(param, value)
    return bn_values


def _residual_candidates(x, blk, c_in, strides, bn_values):
    """The correct output and the outputs of common mistakes, from the same weights."""
    bias = lambda conv: walk.get(conv.bias) if conv.bias is not None else None
    three = [c for c in walk.convs(blk) if walk.kernel(c) == (3, 3)]
    ones = [c for c in walk.convs(blk) if walk.kernel(c) == (1, 1)]
    first = next(c for c in three if c.weight.shape[1] == c_in)
    second = three[1] if three[0] is first else three[0]
    bn = lambda z: ref.batch_norm(z, *bn_values)
    conv1 = lambda z: ref.conv2d(z, walk.get(first.weight), bias(first), stride=strides, pad=1)
    conv2 = lambda z: ref.conv2d(z, walk.get(second.weight), bias(second), stride=1, pad=1)
    short = ref.conv2d(x, walk.get(ones[0].weight), bias(ones[0]), stride=strides) if ones else x
    main = bn(conv2(ref.relu(bn(conv1(x)))))
    return [
        (None, ref.relu(main + short)),
        ("the final ReLU is missing: apply ReLU after adding the shortcut", main + short),
        ("the ReLU is applied before the shortcut is added; add first, then ReLU",
         ref.relu(main) + short),
        ("the shortcut is not added: the output must be ReLU(main path + shortcut)", ref.relu(main)),
        ("ReLU comes before batch normalization; the order is convolution, BatchNorm, ReLU",
         ref.relu(bn(ref.relu(conv2(bn(ref.relu(conv1(x)))))) + short)),
    ]


@check("Residual computes ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X))")
def residual_behaviour(Residual):
    rng = onp.random.default_rng(7)
    for channels, proj, strides, c_in in [(4, False, 1, 4), (6, True, 2, 3), (6, True, 1, 3)]:
        name = f"Residual({channels}, use_1x1conv={proj}, strides={strides})"
        blk = _build_residual(Residual, channels, proj, strides)
        x = rng.normal(size=(2, c_in, 6, 6))
        _run(blk, x.shape)
        three = [c for c in walk.convs(blk) if walk.kernel(c) == (3, 3)]
        expect(len(three) == 2 and len(walk.batch_norms(blk)) == 2,
               f"{name} should hold two 3x3 convolutions and two BatchNorm layers.")
        expect(any(c.weight.shape[1] == c_in for c in three),
               f"the first 3x3 convolution of {name} should read the block's input.")
        bn_values = _set_residual_weights(blk, channels, rng)
        with autograd.predict_mode():
            got = blk(mnp.array(x, dtype="float32")).asnumpy()
        for mistake, expected in _residual_candidates(x, blk, c_in, strides, bn_values):
            if expected.shape == got.shape and onp.allclose(got, expected, rtol=1e-3, atol=1e-4):
                if mistake is None:
                    break
                fail(f"in {name}, {mistake}.")
        else:
            fail(f"{name} does not compute ReLU(BN(conv(ReLU(BN(conv(X))))) + shortcut(X)). "
                 "Check the order of the layers, that the first 3x3 convolution uses the stride, "
                 "and that the shortcut is the input itself (or its 1x1 convolution).")


# -------------------------------------------------------------------- stem

@check("make_stem turns a (B, 1, H, W) image into (B, 64, H/4, W/4) features")
def stem_shapes(make_stem):
    for size, out in [(224, 56), (96, 24)]:
        got = _shape(_run(make_stem(), (2, 1, size, size)))
        _expect_shape(got, (2, 64, out, out), f"make_stem() on a {size}x{size} image")


@check("make_stem is a 7x7/64 stride-2 convolution, BatchNorm, ReLU and 3x3 stride-2 max pooling")
def stem_structure(make_stem):
    stem = make_stem()
    _run(stem, (1, 1, 32, 32))
    convs, pools = walk.convs(stem), walk.max_pools(stem)
    expect(len(convs) == 1, f"the stem should hold exactly one convolution, found {len(convs)}.")
    conv = convs[0]
    expect(walk.kernel(conv) == (7, 7) and conv._kwargs["num_filter"] == 64,
           "the stem's convolution should be 7x7 with 64 output channels.")
    expect(walk.stride(conv) == (2, 2) and walk.padding(conv) == (3, 3),
           "the stem's convolution should use strides=2 and padding=3.")
    expect(len(walk.batch_norms(stem)) == 1, "the stem should hold one BatchNorm layer.")
    expect(len(pools) == 1, "the stem should end with one MaxPool2D layer.")
    pool = pools[0]
    expect(tuple(pool._kwargs["kernel"]) == (3, 3) and walk.stride(pool) == (2, 2)
           and walk.padding(pool) == (1, 1),
           "the stem's max pooling should use pool_size=3, strides=2, padding=1.")


@check("make_stem applies convolution, then BatchNorm, then ReLU, then max pooling")
def stem_behaviour(make_stem):
    rng = onp.random.default_rng(3)
    stem = make_stem()
    x = rng.normal(size=(2, 1, 20, 20))
    _run(stem, x.shape)
    conv, bn = walk.convs(stem)[0], walk.batch_norms(stem)[0]
    weight, bias = rng.normal(scale=0.2, size=(64, 1, 7, 7)), rng.normal(scale=0.1, size=64)
    walk.put(conv.weight, weight)
    if conv.bias is not None:
        walk.put(conv.bias, bias)
    else:
        bias = None
    bn_values = (rng.uniform(0.5, 1.5, 64), rng.normal(scale=0.5, size=64),
                 rng.normal(scale=0.2, size=64), rng.uniform(0.5, 1.5, 64))
    for param, value in zip((bn.gamma, bn.beta, bn.running_mean, bn.running_var), bn_values):
        walk.put(param, value)
    with autograd.predict_mode():
        got = stem(mnp.array(x, dtype="float32")).asnumpy()
    z = ref.conv2d(x, weight, bias, stride=2, pad=3)
    norm = lambda v: ref.batch_norm(v, *bn_values)
    candidates = [
        (None, ref.max_pool(ref.relu(norm(z)))),
        ("ReLU comes before BatchNorm; normalise first, then ReLU", ref.max_pool(norm(ref.relu(z)))),
        ("there is no ReLU after the BatchNorm layer", ref.max_pool(norm(z))),
    ]
    for mistake, expected in candidates:
        if expected.shape == got.shape and onp.allclose(got, expected, rtol=1e-3, atol=1e-4):
            if mistake is None:
                return
            fail(mistake + ".")
    fail("the stem's output does not match MaxPool(ReLU(BatchNorm(Conv(X)))).")


# ------------------------------------------------------------ resnet_block

class _UnitSpy(gluon.nn.HybridBlock):
    """Stands in for the student's Residual: remembers its arguments and
    changes the shape exactly as a correct Residual would. A HybridBlock, so
    it fits in both Sequential and HybridSequential containers."""
    calls = None

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        type(self).calls.append((num_channels, bool(use_1x1conv), int(strides)))
        self.proj = gluon.nn.Conv2D(num_channels, 1, strides=strides)

    def hybrid_forward(self, F, X):
        return self.proj(X)


def _unit_spy():
    return type("Residual", (_UnitSpy,), {"calls": []})


def _expected_units(channels, count, first_block):
    return [(channels, not first_block, 1 if first_block else 2)] + [(channels, False, 1)] * (count - 1)


def _describe_units(calls):
    return ", ".join(f"Residual({c}, use_1x1conv={p}, strides={s})" for c, p, s in calls) or "nothing"


def _block_with_spy(resnet_block, channels, count, first_block):
    spy = _unit_spy()
    with _replaced(resnet_block, Residual=spy):
        blk = resnet_block(channels, count, first_block=first_block)
    return blk, spy.calls


@check("resnet_block(64, 2, first_block=True) keeps (1, 64, 56, 56); resnet_block(128, 2) halves it")
def resnet_block_demo(resnet_block):
    for channels, count, first, x_shape, want in [(64, 2, True, (1, 64, 56, 56), (1, 64, 56, 56)),
                                                  (128, 2, False, (1, 64, 56, 56), (1, 128, 28, 28))]:
        blk, _ = _block_with_spy(resnet_block, channels, count, first)
        _expect_shape(_shape(_run(blk, x_shape)), want,
                      f"resnet_block({channels}, {count}, first_block={first})")


@check("resnet_block builds the right Residual units in the right order")
def resnet_block_units(resnet_block):
    for channels, count, first in [(64, 2, True), (128, 2, False), (32, 3, True), (48, 4, False), (8, 1, False)]:
        blk, calls = _block_with_spy(resnet_block, channels, count, first)
        want = _expected_units(channels, count, first)
        expect(calls, "resnet_block should create its units with the Residual class.")
        expect(calls == want,
               f"resnet_block({channels}, {count}, first_block={first}) created {_describe_units(calls)}; "
               f"expected {_describe_units(want)}. Only the first unit of a block that is not the "
               "first block changes the shape.")
        expect(len(walk.children(blk)) == count,
               f"the block returned by resnet_block({channels}, {count}) should hold its {count} units "
               f"as its children, in order (found {len(walk.children(blk))} children).")
        c_in = channels if first else channels // 2 if channels % 2 == 0 else channels
        side = 8
        out = _shape(_run(blk, (2, c_in, side, side)))
        want_side = side if first else side // 2
        _expect_shape(out, (2, channels, want_side, want_side),
                      f"resnet_block({channels}, {count}, first_block={first})")


# ---------------------------------------------------------------- resnet18

def _stage_spy():
    calls = []

    def resnet_block(num_channels, num_residuals, first_block=False):
        calls.append((num_channels, num_residuals, bool(first_block)))
        blk = gluon.nn.HybridSequential()
        blk.add(gluon.nn.Conv2D(num_channels, 1, strides=1 if first_block else 2))
        return blk

    return resnet_block, calls


def _stem_spy():
    stem = gluon.nn.HybridSequential()
    stem.add(gluon.nn.Conv2D(64, 1, strides=4))
    return stem


def _spied_resnet18(resnet18, *args):
    stage, calls = _stage_spy()
    with _replaced(resnet18, resnet_block=stage, make_stem=_stem_spy, Residual=_unit_spy()):
        net = resnet18(*args)
    return net, calls


@check("resnet18() maps a (1, 1, 224, 224) image to (1, 10) class scores")
def resnet18_demo(resnet18):
    net, _ = _spied_resnet18(resnet18)
    _expect_shape(_shape(_run(net, (1, 1, 224, 224))), (1, 10), "resnet18() on a 224x224 image")


@check("resnet18 chains the stem, four stages of 64, 128, 256, 512 channels, global average pooling and Dense")
def resnet18_assembly(resnet18):
    net, calls = _spied_resnet18(resnet18)
    want = [(64, 2, True), (128, 2, False), (256, 2, False), (512, 2, False)]
    expect(calls == want,
           f"resnet18 called resnet_block with {calls or 'nothing'}; expected the four stages {want} "
           "as (num_channels, num_residuals, first_block).")
    for size in (224, 96):
        _expect_shape(_shape(_run(net, (2, 1, size, size))), (2, 10), f"resnet18() on a {size}x{size} image")
    leaves = walk.leaves(net)
    pools = [b for b in leaves if isinstance(b, gluon.nn.GlobalAvgPool2D)]
    expect(len(pools) == 1, "resnet18 should have one GlobalAvgPool2D layer after the stages.")
    expect(isinstance(leaves[-1], gluon.nn.Dense) and leaves[-1]._units == 10,
           "resnet18 should end with a Dense layer of 10 units (one score per class).")
    expect(leaves.index(pools[0]) == len(leaves) - 2,
           "the global average pooling should come right before the final Dense layer.")


@check("resnet18(num_classes) sizes its output layer")
def resnet18_num_classes(resnet18):
    try:
        inspect.signature(resnet18).bind(7)
    except TypeError:
        fail("resnet18 should accept num_classes (default 10).")
    net, _ = _spied_resnet18(resnet18, 7)
    _expect_shape(_shape(_run(net, (3, 1, 64, 64))), (3, 7), "resnet18(7) on a batch of 3")


# ---------------------------------------------------------- shapes, counts

def _small_net():
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Conv2D(4, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Activation("relu"),
            gluon.nn.MaxPool2D(2), gluon.nn.Conv2D(6, 3), gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(3))
    return net


_SHAPE = re.compile(r"\((\d+(?:,\s*\d+)*),?\)")


def _printed_shapes(text):
    shapes = []
    for line in text.strip().splitlines():
        found = _SHAPE.findall(line)
        shapes.append(tuple(int(n) for n in found[-1].split(",")) if found else None)
    return shapes


@check("print_layer_shapes prints one line per top-level layer with its output shape")
def print_layer_shapes_output(print_layer_shapes):
    net = _small_net()
    x = mnp.array(onp.random.default_rng(0).normal(size=(2, 1, 12, 12)), dtype="float32")
    net.initialize()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), autograd.predict_mode():
        print_layer_shapes(net, x)
    want, y = [], x
    with autograd.predict_mode():
        for layer in walk.children(net):
            y = layer(y)
            want.append(_shape(y))
    got = _printed_shapes(buffer.getvalue())
    expect(len(got) == len(want),
           f"for a net of {len(want)} layers, print_layer_shapes printed {len(got)} lines.")
    expect(got == want, f"the printed shapes were {got}; expected {want}, one per layer in order.")


@check("parameter_counts returns (total, trainable, non-trainable) parameter counts")
def parameter_counts_values(parameter_counts):
    for build, shape in [(_small_net, (1, 1, 12, 12)), (lambda: gluon.nn.Dense(5), (2, 7))]:
        net = build()
        _run(net, shape)
        want = walk.parameter_counts(net)
        got = parameter_counts(net)
        try:
            got = tuple(int(n) for n in got)
        except (TypeError, ValueError):
            fail(f"parameter_counts should return three integers, returned {got!r}.")
        expect(got == want, f"for a test network parameter_counts returned {got}, expected {want}. "
                            "Non-trainable parameters are those with grad_req == 'null' "
                            "(BatchNorm's running mean and variance).")
    frozen = _small_net()
    _run(frozen, (1, 1, 12, 12))
    frozen.collect_params().setattr("grad_req", "null")
    total = walk.parameter_counts(frozen)[0]
    got = tuple(int(n) for n in parameter_counts(frozen))
    expect(got == (total, 0, total), f"for a fully frozen network expected {(total, 0, total)}, got {got}.")


@check("the whole ResNet-18 has the expected stage shapes and 11,186,186 parameters")
def resnet18_complete(resnet18):
    net = resnet18()
    for size in (224, 96):
        _run(net, (1, 1, size, size))
        y = mnp.zeros((1, 1, size, size))
        shapes = []
        with autograd.predict_mode():
            for layer in walk.children(net):
                y = layer(y)
                shapes.append(_shape(y))
        stage_shapes = [s for s in shapes if len(s) == 4 and s[1] in STAGE_CHANNELS and s[2] > 1]
        side = size // 4
        want = [(1, c, side // f, side // f) for c, f in zip(STAGE_CHANNELS, (1, 2, 4, 8))]
        expect(all(w in stage_shapes for w in want),
               f"at {size}x{size} input the stages should output {want}; top-level layers gave {shapes}.")
    counts = walk.parameter_counts(net)
    expect(counts == RESNET18_COUNTS,
           f"the network has {counts[0]:,} parameters ({counts[1]:,} trainable, {counts[2]:,} not); "
           f"expected {RESNET18_COUNTS[0]:,} ({RESNET18_COUNTS[1]:,} and {RESNET18_COUNTS[2]:,}). "
           "Use Gluon's default Conv2D, BatchNorm and Dense settings.")
