"""The figures are true: the nested function classes nest, and every block diagram and the ResNet-18
overview show the layers the reference networks really run, in the order they run them.

The reference networks are the source notebooks' own solutions, executed here. Layers are traced as
they are called: forward hooks on the convolutions and BatchNorms, and a recording ``npx.relu``.
"""
import re
import types

import matplotlib
import nbformat
import numpy as onp
import pytest
from matplotlib.patches import Ellipse

from autograder import course
from autograder.student import figures, gluon_walk

matplotlib.use("Agg")
PRELUDE = "from mxnet import autograd, gluon, init, np, npx\nfrom mxnet.gluon import nn\nnpx.set_np()\n"
SOLUTION = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$", re.M)


def reference(assignment):
    """The namespace after running every solution cell of the source notebook (the reference answers)."""
    space = {}
    exec(PRELUDE, space)
    for cell in nbformat.read(course.source_notebook(assignment), as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            exec(SOLUTION.sub("", cell.source), space)
    return space


def drawn_classes(nested):
    fig = figures.function_classes_figure()
    ax = fig.axes[1 if nested else 0]
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    labels = [t.get_text() for t in ax.texts]
    matplotlib.pyplot.close(fig)
    return [figures.FunctionClass(label, tuple(e.center), e.width, e.height)
            for label, e in zip(labels, ellipses)], labels, [e.angle for e in ellipses]


def worst_radius(inner, outer):
    """How far the outline of ``inner`` reaches out of ``outer``: above 1 means it crosses it."""
    return float(figures.normalised_radius(figures.boundary(inner), outer).max())


def test_the_nested_classes_are_drawn_nested_and_labelled_as_the_text_does():
    classes, labels, angles = drawn_classes(nested=True)
    assert len(classes) == 4 and angles == [0, 0, 0, 0]
    for inner, outer in zip(classes, classes[1:]):
        assert worst_radius(inner, outer) < 0.97, (inner.label, outer.label)
    assert labels[:4] == [rf"$\mathcal{{F}}_{i}$" for i in (1, 2, 3, 4)] and "$f^*$" in labels
    text = nbformat.read(course.source_notebook("resnet18"), as_version=4).cells
    prose = "\n".join(c.source for c in text if c.cell_type == "markdown")
    assert r"\mathcal{F}_1 \subseteq \mathcal{F}_2 \subseteq \mathcal{F}_3 \subseteq" in prose
    # each larger class reaches closer to f*
    gaps = [onp.hypot(*(figures.boundary(c) - figures.TARGET).T).min() for c in classes[:3]]
    assert gaps == sorted(gaps, reverse=True)


def test_the_other_panel_is_really_not_nested():
    classes, _, _ = drawn_classes(nested=False)
    assert all(worst_radius(inner, outer) > 1.1 for inner, outer in zip(classes, classes[1:]))


def test_the_containment_measure_can_fail():
    small = figures.FunctionClass("a", (0.0, 0.0), 2.0, 1.0)
    assert worst_radius(small, small._replace(width=2.2, height=1.2)) < 1
    assert worst_radius(small, small._replace(centre=(0.3, 0.0), width=2.2, height=1.2)) > 1


# --------------------------------------------------------------------------- block diagrams

class RecordingNpx(types.SimpleNamespace):
    """``npx`` for the reference code, noting each ``relu`` in the trace."""

    def __init__(self, trace):
        from mxnet import npx
        super().__init__(real=npx, trace=trace)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def relu(self, x):
        self.trace.append(("ReLU",))
        return self.real.relu(x)


def layer_kind(layer, c):
    from mxnet import gluon
    if isinstance(layer, gluon.nn.BatchNorm):
        return ("BN",)
    size = gluon_walk.kernel(layer)[0]
    width = {c: "c", 4 * c: "4c"}[layer._channels]
    return ("conv", size, width, gluon_walk.stride(layer)[0] != 1)


def traced(space, make, shortcut_attribute, c=4, **kwargs):
    """(main path, shortcut convolutions) of a reference block with ``c`` channels, as run; the
    shortcut's convolution is the block's attribute ``shortcut_attribute`` (None when it has none)."""
    from mxnet import np
    trace, shortcut = [], []
    space["npx"] = RecordingNpx(trace)
    try:
        block = make(space, c, **kwargs)
        block.initialize()
        projection = getattr(block, shortcut_attribute)
        for leaf in gluon_walk.leaves(block):
            target = shortcut if leaf is projection else trace
            leaf.register_forward_hook(lambda layer, _, __, target=target: target.append(layer_kind(layer, c)))
        strides = kwargs.get("strides", 1)
        channels_in = 4 * c if "Bottleneck" in type(block).__name__ and strides == 1 else c
        block(np.ones((1, channels_in, 8, 8)))
    finally:
        from mxnet import npx
        space["npx"] = npx
    return trace, shortcut


def drawn(labels):
    """The figure's box labels as layer kinds, e.g. 'conv 1x1\\n4c, stride s' -> ('conv', 1, '4c', True)."""
    kinds = []
    for label in labels:
        found = re.fullmatch(r"conv (\d)x\d\n(4?c)(, stride s)?", label)
        kinds.append(("conv", int(found[1]), found[2], bool(found[3])) if found else (label,))
    return kinds


CASES = [("resnet18", figures.residual_diagram, "use_1x1conv", "Residual", "conv3"),
         ("bottleneck", figures.bottleneck_diagram, "use_projection", "Bottleneck", "projection"),
         ("bottleneck", figures.preact_diagram, "use_projection", "PreActBottleneck", "projection")]


@pytest.mark.parametrize("with_shortcut_layer", [True, False])
@pytest.mark.parametrize("assignment, diagram, flag, name, attribute", CASES,
                         ids=["residual", "bottleneck", "preact"])
def test_block_diagrams_show_the_layers_the_reference_runs(assignment, diagram, flag, name, attribute,
                                                          with_shortcut_layer):
    space = reference(assignment)
    strides = 2 if with_shortcut_layer else 1
    main, shortcut = traced(space, lambda s, c, **k: s[name](c, **k), attribute,
                            **{flag: with_shortcut_layer, "strides": strides})
    picture = diagram(with_shortcut_layer)
    shown_main = drawn(picture.shared + picture.branch + picture.after)
    if not with_shortcut_layer:  # at stride 1 the figure's "stride s" convolutions run with stride 1
        shown_main = [k[:3] + (False,) if k[0] == "conv" else k for k in shown_main]
    assert main == shown_main
    assert shortcut == drawn(picture.shortcut)


def test_the_trace_sees_a_wrong_order():
    """A block with BN and ReLU swapped traces differently from the figure: the comparison can fail."""
    space = reference("resnet18")
    exec("class Swapped(Residual):\n"
         "    def forward(self, X):\n"
         "        Y = self.bn1(npx.relu(self.conv1(X)))\n"
         "        return npx.relu(self.bn2(self.conv2(Y)) + X)\n", space)
    main, _ = traced(space, lambda s, c, **k: s["Swapped"](c, **k), "conv3", use_1x1conv=False, strides=1)
    picture = figures.residual_diagram(False)
    assert main != [k[:3] + (False,) if k[0] == "conv" else k for k in drawn(picture.branch + picture.after)]


def test_the_resnet18_figure_matches_the_reference_network():
    from mxnet import gluon, np
    space = reference("resnet18")
    net = space["resnet18"]()
    net.initialize()
    parts = list(net)
    groups = [parts[0], *parts[1:5], parts[5:]]  # stem, four stages, head (pooling and dense)
    assert len(groups) == len(figures.RESNET18)
    X = np.ones((1, 1, 224, 224))
    for stage, group in zip(figures.RESNET18, groups):
        layers = group if isinstance(group, list) else [group]
        for layer in layers:
            X = layer(X)
        assert tuple(X.shape[1:]) == stage.output, stage.name
        weighted = [leaf for layer in layers for leaf in gluon_walk.leaves(layer)
                    if isinstance(leaf, gluon.nn.Dense)
                    or (isinstance(leaf, gluon.nn.Conv2D) and gluon_walk.kernel(leaf) != (1, 1))]
        assert len(weighted) == stage.weight_layers, stage.name
    assert sum(stage.weight_layers for stage in figures.RESNET18) == 18
