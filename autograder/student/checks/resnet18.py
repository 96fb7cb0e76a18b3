"""Visible checks of the ResNet-18 notebook (``source/resnet18``).

The notebook's visible test cells call ``check.<part>(obj)``; each name in
:data:`PARTS` is such a part. Each part observes the student's code and
judges the observation (see ``parts.py`` for why the two are separate).
The hidden tests' observers (``autograder/sandboxed/observers/resnet18.py``)
reuse the stand-ins and some observers defined here; their judges stay with
the instructor's grader.

Parts are independent: where an exercise builds on an earlier one
(``resnet_block`` uses ``Residual``, ``resnet18`` uses ``make_stem`` and
``resnet_block``), the observer swaps the earlier piece for a stand-in that
records how it is called, so a bug in ``Residual`` costs only the
``Residual`` marks. Layers are found by kind and settings, never by their
auto-generated names.
"""
import contextlib
import io
import re

from .. import gluon_walk as walk
from ..lazy_mxnet import autograd, gluon, made_when_loaded, mnp
from ..parts import Part, canonical, expect, fail


# ------------------------------------------------------------ stand-ins

def plain_stride(strides):
    """A stride as the judges compare it: ``2``, ``(2, 2)`` and ``[2, 2]`` all
    become ``2``; an uneven pair stays a list (``[2, 1]``), which no judge accepts.
    Gluon takes either spelling, so the checks must too."""
    if isinstance(strides, (tuple, list)):
        pair = [int(n) for n in strides]
        return pair[0] if len(pair) == 2 and pair[0] == pair[1] else pair
    return int(strides)


@made_when_loaded
def _unit_spy_base():
    """The stand-in's class, made on first use (it subclasses a Gluon block: MXNet is imported then)."""
    class _UnitSpy(gluon.nn.HybridBlock):
        """Stands in for Residual: records its arguments, changes the shape as
        Residual would. A HybridBlock, so it fits any Gluon container."""
        calls = None

        def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
            super().__init__(**kwargs)
            type(self).calls.append([int(num_channels), bool(use_1x1conv), plain_stride(strides)])
            self.proj = gluon.nn.Conv2D(num_channels, 1, strides=strides)

        def hybrid_forward(self, F, X):
            return self.proj(X)

    return _UnitSpy


def unit_spy():
    return type("Residual", (_unit_spy_base(),), {"calls": []})


def stage_spy():
    calls = []

    def resnet_block(num_channels, num_residuals, first_block=False):
        calls.append([int(num_channels), int(num_residuals), bool(first_block)])
        blk = gluon.nn.HybridSequential()
        blk.add(gluon.nn.Conv2D(num_channels, 1, strides=1 if first_block else 2))
        return blk

    return resnet_block, calls


def stem_spy():
    stem = gluon.nn.HybridSequential()
    stem.add(gluon.nn.Conv2D(64, 1, strides=4))
    return stem


def residual_name(channels, proj, strides):
    """How a case is written in messages; ``proj=None`` stands for the defaults."""
    if proj is None:
        return f"Residual({channels})"
    return f"Residual({channels}, use_1x1conv={proj}, strides={strides})"


def build_residual(Residual, channels, proj, strides):
    """``Residual(channels, use_1x1conv=proj, strides=strides)``, or ``Residual(channels)``
    when ``proj`` is None, which tests the signature's defaults."""
    try:
        if proj is None:
            return Residual(channels)
        return Residual(channels, use_1x1conv=proj, strides=strides)
    except TypeError as error:
        fail(f"{residual_name(channels, proj, strides)} could not be created "
             f"({error}). Keep the signature Residual(num_channels, use_1x1conv=False, strides=1).")


# ----------------------------------------------------------------- Residual

class ResidualDemoShapes(Part):
    name = "residual_demo_shapes"
    description = "Residual keeps the shape, or changes it with use_1x1conv=True and strides=2"

    def challenge(self, rng=None):
        """The notebook's two cases: an identity block, and a stride-2 projection to more channels
        of an input with an even side. Secret draws keep both, with other sizes."""
        if rng is None:
            return {"cases": [[3, False, 1, [4, 3, 6, 6]], [6, True, 2, [4, 3, 6, 6]]]}
        c_in, batch, side = int(rng.integers(2, 9)), int(rng.integers(1, 6)), 2 * int(rng.integers(2, 7))
        x_shape = [batch, c_in, side, side]
        return {"cases": [[c_in, False, 1, x_shape], [c_in + int(rng.integers(1, 9)), True, 2, x_shape]]}

    def observe(self, Residual, challenge):
        return {"shapes": [walk.shape_of(walk.run(build_residual(Residual, c, p, s), x_shape))
                           for c, p, s, x_shape in challenge["cases"]]}

    def judge(self, challenge, observation):
        for (c, p, s, x_shape), got in zip(challenge["cases"], observation["shapes"], strict=True):
            want = [x_shape[0], c, walk.out_side(x_shape[2], s), walk.out_side(x_shape[3], s)]
            expect(got == want, f"{residual_name(c, p, s)} on an input of shape "
                                f"{tuple(x_shape)} gave output shape {tuple(got)}, expected {tuple(want)}.")


# -------------------------------------------------------------------- stem

class StemShapes(Part):
    name = "stem_shapes"
    description = "make_stem turns a (B, 1, H, W) image into (B, 64, H/4, W/4) features"

    def challenge(self, rng=None):
        sides = [224, 96] if rng is None else [int(rng.integers(8, 40)) * 4 for _ in range(2)]
        return {"sides": sides}

    def observe(self, make_stem, challenge):
        return {"shapes": [walk.shape_of(walk.run(make_stem(), (2, 1, side, side))) for side in challenge["sides"]]}

    def judge(self, challenge, observation):
        for side, got in zip(challenge["sides"], observation["shapes"], strict=True):
            want = [2, 64, side // 4, side // 4]
            expect(got == want, f"make_stem() on a {side}x{side} image gave {tuple(got)}, expected {tuple(want)}.")


# ------------------------------------------------------------ resnet_block

def stage_name(channels, count, first):
    """How a case is written in messages; ``first=None`` stands for the default."""
    return f"resnet_block({channels}, {count}" + ("" if first is None else f", first_block={first}") + ")"


class ResnetBlockDemo(Part):
    name = "resnet_block_demo"
    description = "resnet_block(64, 2, first_block=True) keeps (B, 64, H, W); resnet_block(128, 2) halves it"

    def challenge(self, rng=None):
        """A first stage and a later one called without ``first_block`` (None: the default, False),
        on an input of an even ``side``; secret draws keep both, with other sizes."""
        if rng is None:
            return {"cases": [[64, 2, True], [128, 2, None]], "side": 8}
        return {"cases": [[int(rng.integers(2, 65)), int(rng.integers(2, 4)), first] for first in (True, None)],
                "side": 2 * int(rng.integers(2, 7))}

    def observe(self, resnet_block, challenge):
        found = []
        for channels, count, first in challenge["cases"]:
            spy = unit_spy()
            with walk.replaced(resnet_block, Residual=spy):
                blk = (resnet_block(channels, count) if first is None
                       else resnet_block(channels, count, first_block=first))
            x_shape = (2, max(1, channels // 2), challenge["side"], challenge["side"])
            found.append({"calls": spy.calls, "children": len(walk.children(blk)),
                          "shape": walk.shape_of(walk.run(blk, x_shape))})
        return {"found": found}

    def judge(self, challenge, observation):
        size = challenge["side"]
        for (channels, count, first), got in zip(challenge["cases"], observation["found"], strict=True):
            side = size if first else walk.out_side(size, 2)
            expect(got["shape"] == [2, channels, side, side],
                   f"{stage_name(channels, count, first)} gave output shape {tuple(got['shape'])} "
                   f"on an input of {size}x{size}, expected {(2, channels, side, side)}.")


# ---------------------------------------------------------------- resnet18

def spied_resnet18(resnet18, *args):
    stage, calls = stage_spy()
    with walk.replaced(resnet18, resnet_block=stage, make_stem=stem_spy, Residual=unit_spy()):
        net = resnet18(*args)
    return net, calls


class Resnet18Demo(Part):
    name = "resnet18_demo"
    description = "resnet18() maps a batch of (B, 1, H, W) images to (B, 10) class scores"

    def challenge(self, rng=None):
        """Batches of images, as (batch size, side)."""
        if rng is None:
            return {"inputs": [[1, 224]]}
        return {"inputs": [[int(rng.integers(1, 33)), int(rng.integers(32, 97))] for _ in range(2)]}

    def observe(self, resnet18, challenge):
        net, _ = spied_resnet18(resnet18)
        return {"shapes": [walk.shape_of(walk.run(net, (batch, 1, side, side))) for batch, side in challenge["inputs"]]}

    def judge(self, challenge, observation):
        for (batch, side), shape in zip(challenge["inputs"], observation["shapes"], strict=True):
            expect(shape == [batch, 10], f"resnet18() on a batch of {batch} images of {side}x{side} gave "
                                         f"{tuple(shape)}, expected ({batch}, 10).")


# ---------------------------------------------------------- shapes, counts

def random_spec(rng):
    """A small test network, as layer descriptions the judge can do arithmetic on.

    Every draw has the same layers as the notebook's (a padded and an unpadded
    convolution, BatchNorm, ReLU, pooling, global pooling, Dense); only the
    sizes are drawn, so no draw is easier than another."""
    if rng is None:
        return {"input": [2, 1, 12, 12],
                "layers": [["conv", 4, 3, 1], ["bn"], ["relu"], ["pool", 2], ["conv", 6, 3, 0],
                           ["gap"], ["dense", 3]]}
    small = lambda low, high: int(rng.integers(low, high))
    return {"input": [small(1, 5), small(1, 4), small(10, 17), small(10, 17)],
            "layers": [["conv", small(2, 9), 3, 1], ["bn"], ["relu"], ["pool", 2], ["conv", small(2, 9), 3, 0],
                       ["gap"], ["dense", small(2, 9)]]}


def build_spec(spec):
    net = gluon.nn.Sequential()
    makers = {"conv": lambda c, k, p: gluon.nn.Conv2D(c, k, padding=p), "bn": gluon.nn.BatchNorm,
              "relu": lambda: gluon.nn.Activation("relu"), "pool": gluon.nn.MaxPool2D,
              "gap": gluon.nn.GlobalAvgPool2D, "dense": gluon.nn.Dense}
    for kind, *args in spec["layers"]:
        net.add(makers[kind](*args))
    return net


def spec_shapes_and_counts(spec):
    """Output shape after each layer and (total, trainable, frozen-if-all) parameter counts, by arithmetic."""
    shape, shapes, params = list(spec["input"]), [], []
    for kind, *args in spec["layers"]:
        if kind == "conv":
            c, k, p = args
            params.append((c * shape[1] * k * k + c, 0))
            shape = [shape[0], c, shape[2] + 2 * p - k + 1, shape[3] + 2 * p - k + 1]
        elif kind == "bn":
            params.append((2 * shape[1], 2 * shape[1]))
        elif kind == "pool":
            shape = [shape[0], shape[1], shape[2] // 2, shape[3] // 2]
            params.append((0, 0))
        elif kind == "gap":
            shape = [shape[0], shape[1], 1, 1]
            params.append((0, 0))
        elif kind == "dense":
            params.append((args[0] * shape[1] + args[0], 0))
            shape = [shape[0], args[0]]
        else:
            params.append((0, 0))
        shapes.append(shape)
    return shapes, params


_SHAPE = re.compile(r"\((\d+(?:,\s*\d+)*),?\)")


def printed_shapes(text):
    shapes = []
    for line in text.strip().splitlines():
        found = _SHAPE.findall(line)
        shapes.append([int(n) for n in found[-1].split(",")] if found else None)
    return shapes


class PrintLayerShapes(Part):
    name = "print_layer_shapes_output"
    description = "print_layer_shapes prints one line per top-level layer with its output shape"

    def challenge(self, rng=None):
        return {"spec": random_spec(rng)}

    def observe(self, print_layer_shapes, challenge):
        spec = challenge["spec"]
        net = build_spec(spec)
        net.initialize()
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), autograd.predict_mode():
            print_layer_shapes(net, mnp.array(canonical(1, "input", spec["input"]), dtype="float32"))
        return {"printed": buffer.getvalue()[:20_000]}

    def judge(self, challenge, observation):
        want, _ = spec_shapes_and_counts(challenge["spec"])
        got = printed_shapes(str(observation["printed"]))
        expect(len(got) == len(want),
               f"for a net of {len(want)} layers, print_layer_shapes printed {len(got)} lines.")
        expect(got == want, f"the printed shapes were {[tuple(s) if s else s for s in got]}; expected "
                            f"{[tuple(s) for s in want]}, one per layer in order.")


class ParameterCounts(Part):
    name = "parameter_counts_values"
    description = "parameter_counts returns (total, trainable, non-trainable) parameter counts"

    def challenge(self, rng=None):
        """One test network counted as it is, with its BatchNorm layer (index 1) frozen and with
        everything frozen, and a lone Dense layer; only the sizes are drawn."""
        spec = random_spec(rng)
        dense = {"input": [2, 7], "layers": [["dense", 5]]}
        if rng is not None:
            dense = {"input": [2, int(rng.integers(2, 20))], "layers": [["dense", int(rng.integers(2, 9))]]}
        everything = list(range(len(spec["layers"])))
        return {"specs": [spec, dense, spec, spec], "frozen": [[], [], [1], everything]}

    def observe(self, parameter_counts, challenge):
        results = []
        for spec, frozen in zip(challenge["specs"], challenge["frozen"]):
            net = build_spec(spec)
            walk.run(net, spec["input"])
            for i in frozen:
                walk.children(net)[i].collect_params().setattr("grad_req", "null")
            got = parameter_counts(net)
            try:
                results.append([int(n) for n in got])
            except (TypeError, ValueError):
                fail(f"parameter_counts should return three integers, returned {got!r}.")
        return {"results": results}

    def judge(self, challenge, observation):
        for spec, frozen, got in zip(challenge["specs"], challenge["frozen"], observation["results"], strict=True):
            _, params = spec_shapes_and_counts(spec)
            total = sum(t for t, _ in params) + sum(n for _, n in params)
            fixed = sum(n for _, n in params) + sum(t for i, (t, _) in enumerate(params) if i in frozen)
            want = [total, total - fixed, fixed]
            expect(got == want, f"for a test network parameter_counts returned {tuple(got)}, expected "
                                f"{tuple(want)}. Non-trainable parameters are those with grad_req == 'null' "
                                "(BatchNorm's running mean and variance, and any frozen layer).")


PARTS = {part.name: part for part in [
    ResidualDemoShapes(), StemShapes(), ResnetBlockDemo(), Resnet18Demo(), PrintLayerShapes(), ParameterCounts()]}

# What the sandboxed worker runs beside the student's code, by part name (see autograder/sandboxed/).
OBSERVERS = {name: part.observe for name, part in PARTS.items()}

# The names the notebook's visible test cells call: check.<name>(obj).
globals().update({name: part.check for name, part in PARTS.items()})
