"""The sandbox's shape inference for Gluon's stock layers sets what MXNet's own sets, or defers to it."""
import contextlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

mx = pytest.importorskip("mxnet")
from mxnet import gluon, npx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

from autograder.sandboxed import shape_inference  # noqa: E402


@contextlib.contextmanager
def installed():
    shape_inference.install()
    try:
        yield
    finally:
        for layer in shape_inference._SHAPES:
            del layer.infer_shape


@contextlib.contextmanager
def graphs_built():
    """The number of symbol graphs MXNet builds meanwhile (its own shape inference builds one)."""
    built, own = [], gluon.HybridBlock._get_graph

    def counted(self, *args):
        built.append(type(self).__name__)
        return own(self, *args)

    gluon.HybridBlock._get_graph = counted
    try:
        yield built
    finally:
        gluon.HybridBlock._get_graph = own


class Subclassed(nn.Conv2D):
    pass


# (layer, input shape): each either runs or is refused by MXNet.
CASES = [
    (lambda: nn.Conv2D(8, 3), (2, 5, 9, 9)),
    (lambda: nn.Conv2D(8, 3, strides=2, padding=1, use_bias=False), (1, 3, 7, 6)),
    (lambda: nn.Conv2D(6, (3, 1), strides=(2, 1), padding=(1, 0), dilation=(2, 1)), (2, 4, 11, 5)),
    (lambda: nn.Conv2D(6, 1, groups=3), (2, 9, 4, 4)),
    (lambda: nn.Conv2D(4, 7, strides=4, padding=3), (1, 1, 2, 2)),
    (lambda: nn.Conv2D(4, 5), (1, 2, 3, 3)),               # kernel larger than the input: refused
    (lambda: nn.Conv2D(8, 1, groups=4), (2, 6, 4, 4)),     # channels not a multiple of groups: refused
    (lambda: nn.Conv2D(4, 3, layout="NHWC"), (1, 6, 6, 2)),
    (lambda: Subclassed(4, 3), (1, 2, 6, 6)),
    (lambda: nn.Conv2D(4, 3, in_channels=2), (1, 2, 6, 6)),
    (lambda: nn.Conv2D(4, 3), (2, 3, 6)),                  # a 3-D input for a 2-D convolution: refused
    (lambda: nn.BatchNorm(), (2, 5, 3, 3)),
    (lambda: nn.BatchNorm(axis=-1), (2, 3, 7)),
    (lambda: nn.BatchNorm(axis=3), (2, 3)),                # no such axis: refused
    (lambda: nn.BatchNorm(in_channels=4), (2, 4)),
    (lambda: nn.Dense(5), (3, 2, 4, 4)),
    (lambda: nn.Dense(5, flatten=False), (3, 2, 7)),
    (lambda: nn.Dense(5, use_bias=False), (4, 6)),
    (lambda: nn.Dense(5), (6,)),
    (lambda: nn.Dense(5, in_units=6), (2, 6)),
]


def outcome(make, shape):
    """Every parameter's shape after a forward pass, or the kind of error MXNet raised."""
    layer = make()
    layer.initialize()
    try:
        layer(mx.np.ones(shape)).asnumpy()  # MXNet may raise only when the result is read
    except Exception as error:  # MXNet's own, whichever inference ran
        return "refused", type(error).__name__
    return "ran", [p.shape for p in layer.collect_params().values()]


@pytest.mark.parametrize("numpy_mode", [True, False])
def test_every_layer_gets_the_shapes_mxnet_infers_or_is_refused_as_mxnet_refuses_it(numpy_mode):
    (npx.set_np if numpy_mode else npx.reset_np)()
    try:
        if not numpy_mode:  # the legacy arrays: the same layers on mx.nd
            global_np = mx.np
            mx.np = mx.nd
        want = [outcome(make, shape) for make, shape in CASES]
        with installed():
            got = [outcome(make, shape) for make, shape in CASES]
    finally:
        if not numpy_mode:
            mx.np = global_np
        npx.set_np()
    assert [w[0] for w in want].count("refused") >= 5  # the cases that test refusals are refused
    assert got == want


def test_the_stock_layers_build_no_symbol_graph_and_anything_else_still_does():
    npx.set_np()
    with installed():
        for make, shape in CASES[:5] + CASES[11:13] + CASES[15:18]:
            with graphs_built() as built:
                assert outcome(make, shape)[0] == "ran"
            assert built == [], make()
        for make, shape in (CASES[7], CASES[8]):  # another layout, a subclass: MXNet's own inference
            with graphs_built() as built:
                outcome(make, shape)
            assert built, make()
