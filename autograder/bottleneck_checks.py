"""Checks for the bottleneck notebook (``source/bottleneck``).

Three exercises: the ``Bottleneck`` block, the small CIFAR-10 network
``small_resnet`` built from it, and the training loop ``train_adam``. As in
the ResNet-18 checks, each exercise is judged on its own: the
``small_resnet`` checks swap the student's ``Bottleneck`` for a stand-in (or
for a correct reference block when counting parameters), so a bug in the
block costs only the block's marks. Behaviour is judged against outputs
computed in plain NumPy (numpy_ops) from the weights the student's layers
hold, and layers are found by kind and shape, never by name.

There is also an ungraded self-check of the optional pre-activation block.
"""
import contextlib
import inspect

import numpy as onp
from mxnet import autograd, cpu, gluon, np as mnp

from . import gluon_walk as walk
from . import numpy_ops as ref
from .checking import check, expect, fail

EXPANSION = 4
# (total, trainable, non-trainable) of small_resnet(10) with Gluon defaults.
SMALL_RESNET_COUNTS = (818_186, 813_450, 4_736)
# Bottleneck units of small_resnet, as (num_channels, strides, use_projection).
SMALL_RESNET_UNITS = [(64, 1, True), (64, 1, False), (128, 2, True), (128, 1, False)]
TOL = dict(rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------ helpers

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


def _bias(conv):
    return walk.get(conv.bias) if conv.bias is not None else None


def _match(got, candidates):
    """Return (True, None) when ``got`` matches the correct candidate (listed
    first as (None, value)), (False, message) for a diagnosed mistake, and
    (False, None) when nothing matches."""
    for mistake, expected in candidates:
        if expected.shape == got.shape and onp.allclose(got, expected, **TOL):
            return mistake is None, mistake
    return False, None


def _set_known_weights(block, rng):
    """Give every layer of ``block`` known values. Layers of equal shape get
    equal values, so a check never needs to know which one is 'first'.
    Returns {conv weight shape: (weight, bias or None)} and
    {channels: (gamma, beta, mean, var)}."""
    conv_params, bn_params = {}, {}
    for conv in walk.convs(block):
        shape = tuple(conv.weight.shape)
        if shape not in conv_params:
            fan_in = onp.prod(shape[1:])
            conv_params[shape] = (rng.normal(size=shape) / onp.sqrt(fan_in),
                                  rng.normal(scale=0.1, size=shape[0]) if conv.bias is not None else None)
        weight, bias = conv_params[shape]
        walk.put(conv.weight, weight)
        if conv.bias is not None and bias is not None:
            walk.put(conv.bias, bias)
    for bn in walk.batch_norms(block):
        n = int(bn.gamma.shape[0])
        if n not in bn_params:
            bn_params[n] = (rng.uniform(0.5, 1.5, n), rng.normal(scale=0.5, size=n),
                            rng.normal(scale=0.2, size=n), rng.uniform(0.5, 1.5, n))
        for param, value in zip((bn.gamma, bn.beta, bn.running_mean, bn.running_var), bn_params[n]):
            walk.put(param, value)
    return conv_params, bn_params


# --------------------------------------------------------------- Bottleneck

def _name(num_channels, strides, use_projection, cls="Bottleneck"):
    return f"{cls}({num_channels}, strides={strides}, use_projection={use_projection})"


def _build(Bottleneck, num_channels, strides, use_projection, cls="Bottleneck"):
    try:
        return Bottleneck(num_channels, strides=strides, use_projection=use_projection)
    except TypeError as error:
        fail(f"{_name(num_channels, strides, use_projection, cls)} could not be created ({error}). "
             f"Keep the signature {cls}(num_channels, strides=1, use_projection=True).")


def bottleneck_counts(c_in, num_channels, use_projection):
    """(total, trainable, non-trainable) of a correct Bottleneck on ``c_in`` channels."""
    c, out = num_channels, EXPANSION * num_channels
    conv = lambda i, o, k: i * o * k * k + o
    trainable = conv(c_in, c, 1) + conv(c, c, 3) + conv(c, out, 1) + 2 * (c + c + out)
    if use_projection:
        trainable += conv(c_in, out, 1)
    frozen = 2 * (c + c + out)
    return trainable + frozen, trainable, frozen


BOTTLENECK_DEMOS = [((4, 1, True), (2, 4, 8, 8), (2, 16, 8, 8)),
                    ((4, 2, True), (2, 16, 8, 8), (2, 16, 4, 4)),
                    ((4, 1, False), (2, 16, 8, 8), (2, 16, 8, 8))]
BOTTLENECK_UNSEEN = [((3, 1, True), (2, 5, 9, 9), (2, 12, 9, 9)),
                     ((2, 2, True), (1, 8, 7, 7), (1, 8, 4, 4)),
                     ((5, 1, False), (2, 20, 6, 6), (2, 20, 6, 6)),
                     ((8, 2, True), (2, 6, 10, 10), (2, 32, 5, 5)),
                     ((6, 2, True), (1, 24, 5, 5), (1, 24, 3, 3))]


def _error_summary(error):
    """The most telling line of an error message (MXNet's start with a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Traceback", "File ", "["))] or lines or [""]
    last, kind = lines[-1], type(error).__name__
    if last.startswith(kind + ":"):
        last = last[len(kind) + 1:].strip()
    return f"{kind}: {last[:200]}"


def _bottleneck_shapes(Bottleneck, cases):
    for (channels, strides, proj), x_shape, want in cases:
        name = _name(channels, strides, proj)
        blk = _build(Bottleneck, channels, strides, proj)
        out = _run_or_explain(blk, x_shape, channels, strides, proj, f"{name} on an input of shape {x_shape}")
        _expect_shape(_shape(out), want, f"{name} on an input of shape {x_shape}")


def _run_or_explain(blk, shape, c, s, proj, name):
    """_run, turning a failure into an explanation of its usual cause."""
    try:
        return _run(blk, shape)
    except NotImplementedError:
        raise
    except Exception as error:
        _diagnose_failed_run(blk, c, s, proj, name)
        fail(f"{name} raised {_error_summary(error)}. The main path and the shortcut must have the "
             "same shape where they are added.")


@check("Bottleneck expands the channels 4x, keeps the size, or halves it with strides=2")
def bottleneck_demo_shapes(Bottleneck):
    _bottleneck_shapes(Bottleneck, BOTTLENECK_DEMOS)


@check("Bottleneck gives the right output shape for other channel counts, strides and inputs")
def bottleneck_shapes(Bottleneck):
    _bottleneck_shapes(Bottleneck, BOTTLENECK_UNSEEN)


def _find_conv(convs, shape):
    return [c for c in convs if tuple(c.weight.shape) == shape]


def _diagnose_failed_run(blk, c, s, proj, name):
    """The block raised on its input; explain the usual cause from the layers'
    settings, which are known before any data has passed."""
    out = EXPANSION * c
    for conv in walk.convs(blk):
        if walk.kernel(conv) == (3, 3) and walk.padding(conv) != (1, 1):
            fail(f"{name} raised an error: its 3x3 convolution needs padding=1 to keep height and width, "
                 "so that the main path and the shortcut can be added.")
    ones = [conv for conv in walk.convs(blk) if walk.kernel(conv) == (1, 1)]
    wide = [conv for conv in ones if conv._kwargs["num_filter"] == out]
    if not wide:
        fail(f"{name} raised an error, and none of its 1x1 convolutions has 4 * num_channels = "
             f"{out} output channels: the last convolution (and the projection) must expand the channels 4x.")
    if proj and s != 1 and not any(walk.stride(conv) == (s, s) for conv in wide):
        fail(f"{name} raised an error: the main path halves height and width but the shortcut does "
             f"not. The projection shortcut must use strides={s}, like the first 1x1 convolution.")
    if proj and len(wide) < 2:
        fail(f"{name} raised an error; it should have a 1x1 projection convolution with {out} "
             "output channels on the shortcut.")


@check("Bottleneck holds 1x1 -> 3x3 -> 1x1 (4x) convolutions, three BatchNorms, "
       "and a strided 1x1 projection exactly when use_projection=True")
def bottleneck_structure(Bottleneck):
    # (num_channels, strides, use_projection, input channels); the input channel
    # counts make every convolution's weight shape unique, so roles are found by shape.
    for c, s, proj, c_in in [(4, 1, True, 6), (4, 2, True, 6), (3, 2, True, 12), (4, 1, False, 16), (2, 1, False, 8)]:
        name = f"{_name(c, s, proj)} on a {c_in}-channel input"
        out = EXPANSION * c
        blk = _build(Bottleneck, c, s, proj)
        _run_or_explain(blk, (1, c_in, 8, 8), c, s, proj, name)
        convs = walk.convs(blk)
        expect(len(convs) == (4 if proj else 3),
               f"{name} should hold {4 if proj else 3} convolutions (1x1, 3x3, 1x1"
               f"{' and the 1x1 projection' if proj else ''}), found {len(convs)}.")
        three = [conv for conv in convs if walk.kernel(conv) == (3, 3)]
        expect(len(three) == 1, f"{name} should hold exactly one 3x3 convolution, found {len(three)}; "
                                "the other convolutions are 1x1.")
        mid = three[0]
        expect(tuple(mid.weight.shape) == (c, c, 3, 3),
               f"the 3x3 convolution of {name} should map {c} channels to {c} (num_channels), "
               f"its weight has shape {tuple(mid.weight.shape)}.")
        expect(walk.padding(mid) == (1, 1), f"the 3x3 convolution of {name} needs padding=1.")
        expect(walk.stride(mid) == (1, 1),
               f"the 3x3 convolution of {name} should use stride 1: in this block the stride "
               "belongs to the first 1x1 convolution (and the projection).")
        reduce = _find_conv(convs, (c, c_in, 1, 1))
        expect(reduce, f"{name} should start with a 1x1 convolution from the {c_in} input channels to "
                       f"{c} (num_channels) channels.")
        expect(walk.stride(reduce[0]) == (s, s),
               f"the first 1x1 convolution of {name} should use strides={s}.")
        expand = _find_conv(convs, (out, c, 1, 1))
        if not expand:
            narrow = _find_conv(convs, (c, c, 1, 1))
            fail(f"{name} should end its main path with a 1x1 convolution that expands {c} channels "
                 f"to 4 * num_channels = {out}"
                 + (f"; yours keeps {c} channels." if narrow else "."))
        expect(walk.stride(expand[0]) == (1, 1), f"the last 1x1 convolution of {name} should use stride 1.")
        projection = [conv for conv in _find_conv(convs, (out, c_in, 1, 1)) if conv is not expand[0]]
        if proj:
            expect(projection, f"{name} should have a 1x1 projection convolution on the shortcut, "
                               f"from {c_in} to {out} channels.")
            expect(walk.stride(projection[0]) == (s, s),
                   f"the projection shortcut of {name} should use strides={s}, like the first 1x1 "
                   "convolution, so that both branches have the same height and width.")
        else:
            expect(not projection, f"{name} should have no projection: with use_projection=False "
                                   "the shortcut is the input itself.")
        bns = walk.batch_norms(blk)
        expect(len(bns) == 3 or not (proj and len(bns) == 4),
               f"{name} has a BatchNorm on the projection shortcut; in this block, as in the seed, "
               "the projection is a plain 1x1 convolution.")
        expect(len(bns) == 3, f"{name} should hold three BatchNorm layers (one after each convolution "
                              f"of the main path), found {len(bns)}.")
        want = bottleneck_counts(c_in, c, proj)
        got = walk.parameter_counts(blk)
        expect(got == want, f"{name} has {got[0]} parameters ({got[1]} trainable), expected {want[0]} "
                            f"({want[1]} trainable). Keep Gluon's defaults (convolutions with biases, "
                            "plain nn.BatchNorm()).")


def _bottleneck_candidates(x, conv_params, bn_params, c_in, c, proj):
    out = EXPANSION * c
    conv = lambda shape, z, **kw: ref.conv2d(z, *conv_params[shape], **kw)
    R = lambda z: conv((c, c_in, 1, 1), z)
    M = lambda z: conv((c, c, 3, 3), z, pad=1)
    E = lambda z: conv((out, c, 1, 1), z)
    Bc = lambda z: ref.batch_norm(z, *bn_params[c])
    Bo = lambda z: ref.batch_norm(z, *bn_params[out])
    r = ref.relu
    S = conv((out, c_in, 1, 1), x) if proj else x
    inner = r(Bc(M(r(Bc(R(x))))))
    main = Bo(E(inner))
    before_add = "ReLU is applied to the main path before the shortcut is added; add first, then apply ReLU"
    candidates = [
        (None, r(main + S)),
        ("the final ReLU is missing: apply ReLU after adding the shortcut", main + S),
        (before_add, r(main) + S),
        (before_add, r(r(main) + S)),
        ("the shortcut is not added: the output must be ReLU(main path + shortcut)", r(main)),
        ("there is no ReLU after the second BatchNorm (between the 3x3 and the last 1x1 convolution)",
         r(Bo(E(Bc(M(r(Bc(R(x))))))) + S)),
        ("there is no ReLU after the first BatchNorm (between the first 1x1 and the 3x3 convolution)",
         r(Bo(E(r(Bc(M(Bc(R(x))))))) + S)),
        ("ReLU comes before BatchNorm; each convolution is followed by BatchNorm, then ReLU",
         r(Bo(E(Bc(r(M(Bc(r(R(x)))))))) + S)),
        ("the shortcut is added before the last BatchNorm; add it after BatchNorm, right before the final ReLU",
         r(Bo(E(inner) + S))),
    ]
    if proj:
        candidates.append(("a BatchNorm is applied to the projection shortcut; in this block, as in the "
                           "seed, the projection is a plain 1x1 convolution", r(main + Bo(S))))
    return candidates


@check("Bottleneck computes ReLU(BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(X)))))))) + shortcut(X))")
def bottleneck_behaviour(Bottleneck):
    # Stride 1 only: the place of the stride is judged by bottleneck_structure,
    # so a wrong stride costs those marks and not these.
    rng = onp.random.default_rng(11)
    for c, proj, c_in in [(3, True, 5), (3, False, 12), (4, True, 4), (2, True, 8)]:
        name = f"{_name(c, 1, proj)} on a {c_in}-channel input"
        out = EXPANSION * c
        blk = _build(Bottleneck, c, 1, proj)
        x = rng.normal(size=(2, c_in, 6, 6))
        _run_or_explain(blk, x.shape, c, 1, proj, name)
        needed = [(c, c_in, 1, 1), (c, c, 3, 3), (out, c, 1, 1)] + ([(out, c_in, 1, 1)] if proj else [])
        shapes = {tuple(conv.weight.shape) for conv in walk.convs(blk)}
        missing = [shape for shape in needed if shape not in shapes]
        expect(not missing, f"{name} lacks convolutions with weight shapes {missing} "
                            "(out, in, kernel, kernel); see the exercise for the layers it needs.")
        bn_sizes = {int(bn.gamma.shape[0]) for bn in walk.batch_norms(blk)}
        expect({c, out} <= bn_sizes, f"{name} should hold BatchNorm layers over {c} and over {out} channels.")
        conv_params, bn_params = _set_known_weights(blk, rng)
        conv_params = {shape: (walk.get(conv.weight), _bias(conv))
                       for conv in reversed(walk.convs(blk)) for shape in [tuple(conv.weight.shape)]}
        with autograd.predict_mode():
            got = blk(mnp.array(x, dtype="float32")).asnumpy()
        ok, mistake = _match(got, _bottleneck_candidates(x, conv_params, bn_params, c_in, c, proj))
        if ok:
            continue
        if mistake:
            fail(f"in {name}, {mistake}.")
        fail(f"{name} does not compute ReLU(main path + shortcut(X)) with main path "
             "conv1x1 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1 -> BN. Check the order of the "
             "layers and that the shortcut starts from the block's input X (or its 1x1 projection).")


class ReferenceBottleneck(gluon.nn.HybridBlock):
    """A correct bottleneck block, used to count small_resnet's parameters
    independently of the student's block."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        nn = gluon.nn
        self.body = nn.HybridSequential()
        self.body.add(nn.Conv2D(num_channels, 1, strides=strides), nn.BatchNorm(), nn.Activation("relu"),
                      nn.Conv2D(num_channels, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"),
                      nn.Conv2D(EXPANSION * num_channels, 1), nn.BatchNorm())
        self.projection = nn.Conv2D(EXPANSION * num_channels, 1, strides=strides) if use_projection else None

    def hybrid_forward(self, F, X):
        shortcut = self.projection(X) if self.projection is not None else X
        return F.npx.relu(self.body(X) + shortcut)


# ------------------------------------------------------------- small_resnet

class _BlockSpy(gluon.nn.HybridBlock):
    """Stands in for the student's Bottleneck: remembers its arguments and
    changes the shape exactly as a correct block would (one strided 1x1
    convolution to 4 * num_channels). A HybridBlock, so it fits in both
    Sequential and HybridSequential containers."""
    calls = None
    instances = None

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        type(self).calls.append((num_channels, strides, use_projection))
        type(self).instances.append(self)
        self.proj = gluon.nn.Conv2D(EXPANSION * num_channels, 1, strides=strides)

    def hybrid_forward(self, F, X):
        return self.proj(X)


def _block_spy():
    return type("Bottleneck", (_BlockSpy,), {"calls": [], "instances": []})


def _describe(calls):
    return ", ".join(_name(*call) for call in calls) or "nothing"


def _normalise(call):
    c, s, p = call
    s = tuple(s) if isinstance(s, (tuple, list)) else (s, s)
    return (int(c), int(s[0]) if s[0] == s[1] else s, bool(p))


def _spied(small_resnet, *args):
    spy = _block_spy()
    with _replaced(small_resnet, Bottleneck=spy):
        net = small_resnet(*args)
    return net, spy


@check("small_resnet() maps a (2, 3, 32, 32) batch of images to (2, 10) class scores")
def small_resnet_demo(small_resnet):
    net, _ = _spied(small_resnet)
    _expect_shape(_shape(_run(net, (2, 3, 32, 32))), (2, 10), "small_resnet() on a batch of 32x32 images")


@check("small_resnet chains a 3x3 stem, the four bottleneck blocks, global average pooling and Dense")
def small_resnet_assembly(small_resnet):
    try:
        inspect.signature(small_resnet).bind(7)
    except TypeError:
        fail("small_resnet should accept num_classes (default 10).")
    net, spy = _spied(small_resnet)
    calls = [_normalise(call) for call in spy.calls]
    expect(calls, "small_resnet should create its blocks with the Bottleneck class.")
    expect(calls == SMALL_RESNET_UNITS,
           f"small_resnet created {_describe(calls)}; expected {_describe(SMALL_RESNET_UNITS)}. "
           "A block needs the projection whenever its input does not already have 4 * num_channels "
           "channels and the same size as its output.")
    _run(net, (2, 3, 32, 32))
    leaves = walk.leaves(net)
    spy_convs = [unit.proj for unit in spy.instances]
    positions = [next((i for i, leaf in enumerate(leaves) if leaf is conv), None) for conv in spy_convs]
    expect(None not in positions and positions == sorted(positions),
           "small_resnet should hold its four Bottleneck blocks inside the network, in the order "
           "it applies them.")
    own = [leaf for leaf in leaves if not any(leaf is conv for conv in spy_convs)]
    convs = [leaf for leaf in own if isinstance(leaf, gluon.nn.Conv2D)]
    expect(len(convs) == 1, f"besides the blocks, small_resnet should hold one convolution (the stem), "
                            f"found {len(convs)}.")
    stem = convs[0]
    expect(walk.kernel(stem) == (3, 3) and stem._kwargs["num_filter"] == 64
           and walk.stride(stem) == (1, 1) and walk.padding(stem) == (1, 1),
           "the stem convolution should be 3x3 with 64 output channels, stride 1 and padding 1: "
           "32x32 images are small, so unlike ImageNet's 7x7 stride-2 stem it keeps the size.")
    expect(own.index(stem) < min(positions), "the stem should come before the bottleneck blocks.")
    expect(len(walk.batch_norms(net)) == 1,
           f"besides the blocks, small_resnet should hold one BatchNorm (after the stem convolution), "
           f"found {len(walk.batch_norms(net))}.")
    expect(not walk.max_pools(net), "the small CIFAR-10 network has no max pooling: the images are "
                                    "only 32x32.")
    pools = [b for b in leaves if isinstance(b, gluon.nn.GlobalAvgPool2D)]
    expect(len(pools) == 1, "small_resnet should have one GlobalAvgPool2D layer after the blocks.")
    expect(isinstance(leaves[-1], gluon.nn.Dense) and leaves[-1]._units == 10,
           "small_resnet should end with a Dense layer of 10 units (one score per class).")
    expect(leaves.index(pools[0]) > max(positions), "the global average pooling comes after the blocks.")
    for shape in [(1, 3, 32, 32), (3, 3, 16, 16)]:
        _expect_shape(_shape(_run(net, shape)), (shape[0], 10), f"small_resnet() on an input of shape {shape}")
    net7, _ = _spied(small_resnet, 7)
    _expect_shape(_shape(_run(net7, (3, 3, 32, 32))), (3, 7), "small_resnet(7) on a batch of 3")


@check("small_resnet's stem computes ReLU(BatchNorm(conv3x3(X))) and the net ends with plain class scores")
def small_resnet_behaviour(small_resnet):
    rng = onp.random.default_rng(5)
    net, spy = _spied(small_resnet)
    x = rng.normal(size=(2, 3, 8, 8))
    _run(net, x.shape)
    stems = [conv for conv in walk.convs(net) if walk.kernel(conv) == (3, 3)]
    bns, denses = walk.batch_norms(net), [b for b in walk.leaves(net) if isinstance(b, gluon.nn.Dense)]
    expect(len(stems) == 1 and len(bns) == 1 and len(denses) == 1,
           "small_resnet should hold one 3x3 stem convolution, one BatchNorm and one Dense layer "
           "besides its Bottleneck blocks.")
    expect(tuple(stems[0].weight.shape) == (64, 3, 3, 3),
           "the stem convolution should map the 3 colour channels to 64.")
    conv_params, bn_params = _set_known_weights(net, rng)
    dense = denses[0]
    d_weight = rng.normal(scale=0.2, size=dense.weight.shape)
    d_bias = rng.normal(scale=0.1, size=dense.bias.shape) if dense.bias is not None else onp.zeros(dense.weight.shape[0])
    walk.put(dense.weight, d_weight)
    if dense.bias is not None:
        walk.put(dense.bias, d_bias)
    with autograd.predict_mode():
        got = net(mnp.array(x, dtype="float32")).asnumpy()
    stem, bn = stems[0], (lambda z: ref.batch_norm(z, *bn_params[int(bns[0].gamma.shape[0])]))
    conv = lambda z: ref.conv2d(z, walk.get(stem.weight), _bias(stem), stride=1, pad=1)
    order = sorted(spy.instances, key=lambda unit: next(i for i, leaf in enumerate(walk.leaves(net))
                                                        if leaf is unit.proj))

    def rest(z):
        for unit in order:
            z = ref.conv2d(z, walk.get(unit.proj.weight), _bias(unit.proj),
                           stride=walk.stride(unit.proj)[0])
        return ref.dense(ref.global_avg_pool(z), d_weight, d_bias)

    def softmax(z):
        e = onp.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    right = rest(ref.relu(bn(conv(x))))
    ok, mistake = _match(got, [
        (None, right),
        ("the stem applies ReLU before BatchNorm; the order is convolution, BatchNorm, ReLU",
         rest(bn(ref.relu(conv(x))))),
        ("the stem has no ReLU after its BatchNorm", rest(bn(conv(x)))),
        ("the network applies softmax to its output; in Gluon the softmax belongs to the loss "
         "(SoftmaxCrossEntropyLoss), so the network should return plain scores", softmax(right)),
    ])
    if not ok:
        fail(mistake + "." if mistake else
             "the output does not match Dense(GlobalAvgPool(blocks(ReLU(BatchNorm(conv3x3(X)))))). "
             "Check the order of the stem's layers and that the blocks are applied one after another.")


@check("small_resnet has 818,186 parameters (813,450 trainable, 4,736 not) with correct Bottleneck blocks")
def small_resnet_counts(small_resnet):
    with _replaced(small_resnet, Bottleneck=ReferenceBottleneck):
        net = small_resnet()
    try:
        out = _run(net, (2, 3, 32, 32))
    except Exception:
        fail("built from correct Bottleneck blocks, your network fails on a (2, 3, 32, 32) batch: "
             "the shortcut of some block does not match its main path. Check each block's "
             "use_projection and strides against the table.")
    _expect_shape(_shape(out), (2, 10), "small_resnet() on a batch of 32x32 images")
    got = walk.parameter_counts(net)
    want = SMALL_RESNET_COUNTS
    expect(got == want,
           f"built from correct Bottleneck blocks, your network has {got[0]:,} parameters ({got[1]:,} "
           f"trainable, {got[2]:,} not); expected {want[0]:,} ({want[1]:,} and {want[2]:,}). Check the "
           "blocks' arguments and keep Gluon's default Conv2D, BatchNorm and Dense settings.")


# --------------------------------------------------------------- train_adam

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


def _loaders(rng, n_train, n_test, batch_size, features=4, classes=3, spread=0.6):
    """Easy data: one Gaussian cluster per class."""
    centres = rng.normal(scale=2.0, size=(classes, features))

    def make(n):
        y = rng.integers(0, classes, n)
        X = centres[y] + rng.normal(scale=spread, size=(n, features))
        return gluon.data.ArrayDataset(mnp.array(X, dtype="float32"), mnp.array(y, dtype="int32"))

    return (gluon.data.DataLoader(make(n_train), batch_size, shuffle=True),
            gluon.data.DataLoader(make(n_test), batch_size, shuffle=False))


class _Recorder(gluon.nn.Block):
    """A one-layer classifier that remembers its parameters as they were at
    the first forward pass made while training (after any re-initialisation)."""

    def __init__(self, classes=3, features=4, **kwargs):
        super().__init__(**kwargs)
        self.out = gluon.nn.Dense(classes, in_units=features)
        self.first = None

    def forward(self, X):
        if self.first is None and autograd.is_training():
            self.first = [walk.get(p) for p in (self.out.weight, self.out.bias)]
        return self.out(X)


def _history(train_adam, net, train_iter, test_iter, num_epochs, lr):
    net.initialize(force_reinit=True)
    history = train_adam(net, train_iter, test_iter, num_epochs, lr, cpu())
    expect(isinstance(history, dict), f"train_adam should return a dict, returned {type(history).__name__}.")
    missing = [key for key in HISTORY_KEYS if key not in history]
    expect(not missing, f"the history lacks the keys {missing}; it needs {list(HISTORY_KEYS)}.")
    values = {}
    for key in HISTORY_KEYS:
        try:
            values[key] = [float(v) for v in history[key]]
        except (TypeError, ValueError):
            fail(f"history['{key}'] should be a list of numbers, one per epoch.")
        expect(len(values[key]) == num_epochs,
               f"history['{key}'] holds {len(values[key])} values after {num_epochs} epochs; "
               "append one value per epoch.")
        expect(all(onp.isfinite(values[key])), f"history['{key}'] holds values that are not finite.")
        if key.endswith("acc"):
            expect(all(0 <= v <= 1 for v in values[key]),
                   f"history['{key}'] holds {values[key]}; accuracies are fractions between 0 and 1.")
        else:
            expect(all(v >= 0 for v in values[key]), f"history['{key}'] holds negative losses.")
    return values


@check("train_adam returns a history with one train/validation loss and accuracy per epoch")
def train_adam_history(train_adam):
    rng = onp.random.default_rng(0)
    train_iter, test_iter = _loaders(rng, 48, 24, 16)
    _history(train_adam, _Recorder(), train_iter, test_iter, 2, 0.01)


@check("train_adam takes Adam steps of size lr, learns, and reports the validation metrics of the trained net")
def train_adam_behaviour(train_adam):
    rng = onp.random.default_rng(1)
    # One batch, one epoch: Adam's first update moves every parameter by about lr
    # (whatever the size of its gradient); SGD would move it by lr * gradient.
    lr = 0.01
    train_iter, test_iter = _loaders(rng, 32, 16, 32)
    net = _Recorder()
    _history(train_adam, net, train_iter, test_iter, 1, lr)
    expect(net.first is not None, "train_adam never called the network in training mode "
                                  "(inside autograd.record()).")
    after = [walk.get(p) for p in (net.out.weight, net.out.bias)]
    step = onp.concatenate([onp.abs(a - b).ravel() for a, b in zip(after, net.first)]) / lr
    expect(step.max() > 1e-3, "the parameters did not change during training: call l.backward() and "
                              "trainer.step(batch_size) for every batch.")
    near = onp.mean(onp.abs(step - 1) < 0.2)
    expect(near > 0.9, f"after one Adam step with learning rate {lr} every parameter should have moved "
                       f"by about {lr}; yours moved by between {step.min() * lr:.2g} and {step.max() * lr:.2g} "
                       "(a median of {:.2g}). Use gluon.Trainer(net.collect_params(), 'adam', "
                       "{{'learning_rate': lr}}).".format(onp.median(step) * lr))
    # Several epochs on easy data: it learns, and the validation numbers are
    # those of the trained network on test_iter.
    train_iter, test_iter = _loaders(rng, 96, 48, 16)
    net = _Recorder()
    values = _history(train_adam, net, train_iter, test_iter, 6, 0.05)
    expect(values["train_loss"][-1] < values["train_loss"][0],
           f"the training loss did not fall over 6 epochs on easy data: {values['train_loss']}.")
    expect(values["train_acc"][-1] > 0.8,
           f"the training accuracy reached only {values['train_acc'][-1]:.2f} on easy data.")
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    total = correct = count = 0.0
    with autograd.predict_mode():
        for X, y in test_iter:
            y_hat = net(X)
            total += float(loss(y_hat, y).sum())
            correct += float((y_hat.argmax(axis=1).astype("int32") == y).sum())
            count += X.shape[0]
    expect(abs(values["val_acc"][-1] - correct / count) < 1e-6,
           f"the last validation accuracy is {values['val_acc'][-1]:.4f}, but the trained network scores "
           f"{correct / count:.4f} on test_iter: measure it on test_iter after the epoch's training.")
    expect(abs(values["val_loss"][-1] - total / count) < 1e-3 * max(1.0, total / count),
           f"the last validation loss is {values['val_loss'][-1]:.4f}, but the trained network's mean "
           f"cross-entropy on test_iter is {total / count:.4f}: measure it on test_iter after the epoch's "
           "training, as the mean loss per example.")


# ------------------------------------------- optional: pre-activation block

def _preact_candidates(x, conv_params, bn_params, c_in, c, proj):
    out = EXPANSION * c
    conv = lambda shape, z, **kw: ref.conv2d(z, *conv_params[shape], **kw)
    R = lambda z: conv((c, c_in, 1, 1), z)
    M = lambda z: conv((c, c, 3, 3), z, pad=1)
    E = lambda z: conv((out, c, 1, 1), z)
    B = lambda n: (lambda z: ref.batch_norm(z, *bn_params[n]))
    r = ref.relu
    pre = r(B(c_in)(x))
    main = E(r(B(c)(M(r(B(c)(R(pre)))))))
    if proj:
        # Both habits are accepted: the projection may read the pre-activated
        # input (as Gluon's model zoo does) or the raw input.
        right = [(None, main + conv((out, c_in, 1, 1), pre)), (None, main + conv((out, c_in, 1, 1), x))]
    else:
        right = [(None, main + x)]
    wrong = [("there is no ReLU after the addition in a pre-activation block: the next block's BatchNorm "
              "and ReLU come first", r(right[0][1])),
             ("the shortcut is not added", main)]
    return right + wrong


def _preact_check(PreActBottleneck):
    name = "PreActBottleneck"
    rng = onp.random.default_rng(21)
    for (c, s, p), x_shape, want in BOTTLENECK_DEMOS + BOTTLENECK_UNSEEN[:3]:
        blk = _build(PreActBottleneck, c, s, p, name)
        _expect_shape(_shape(_run(blk, x_shape)), want, f"{_name(c, s, p, name)} on an input of shape {x_shape}")
    for c, proj, c_in in [(3, True, 5), (3, False, 12)]:
        label = f"{_name(c, 1, proj, name)} on a {c_in}-channel input"
        blk = _build(PreActBottleneck, c, 1, proj, name)
        x = rng.normal(size=(2, c_in, 6, 6))
        _run(blk, x.shape)
        sizes = sorted(int(bn.gamma.shape[0]) for bn in walk.batch_norms(blk))
        expect(sizes == sorted([c_in, c, c]),
               f"{label} should hold three BatchNorm layers, over {c_in} (the input), {c} and {c} channels; "
               f"found them over {sizes}.")
        conv_params, bn_params = _set_known_weights(blk, rng)
        conv_params = {tuple(conv.weight.shape): (walk.get(conv.weight), _bias(conv))
                       for conv in reversed(walk.convs(blk))}
        needed = [(c, c_in, 1, 1), (c, c, 3, 3), (EXPANSION * c, c, 1, 1)]
        expect(all(shape in conv_params for shape in needed),
               f"{label} should hold 1x1 ({c_in}->{c}), 3x3 ({c}->{c}) and 1x1 ({c}->{EXPANSION * c}) "
               "convolutions.")
        with autograd.predict_mode():
            got = blk(mnp.array(x, dtype="float32")).asnumpy()
        ok, mistake = _match(got, _preact_candidates(x, conv_params, bn_params, c_in, c, proj))
        if not ok:
            fail(f"in {label}, {mistake}." if mistake else
                 f"{label} does not compute main(X) + shortcut(X) with main path BN -> ReLU -> conv1x1 -> "
                 "BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1.")


_preact_checked = check("PreActBottleneck (optional) keeps the shapes and computes BN -> ReLU -> conv "
                        "three times, plus the shortcut")(_preact_check)


def preact_self_check(PreActBottleneck):
    """Ungraded: say 'not attempted' for the untouched stub, else run the check."""
    try:
        PreActBottleneck(4)
    except NotImplementedError:
        print("PreActBottleneck not attempted (optional, not graded).")
        return
    except Exception:
        pass  # the check below reports it
    _preact_checked(PreActBottleneck)
