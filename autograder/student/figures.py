"""The figures of the notebooks, drawn with matplotlib when a cell runs.

They are drawn from data kept here rather than shipped as images, so that a
test can hold each drawing to what it claims: the nested function classes are
checked for containment numerically, and the layers of every block diagram
and of the ResNet-18 overview are compared with the reference networks'
layers as they run (tests/test_figures.py). Nothing here depends on a
student's code, so the figures appear in the release before any exercise is
done.
"""
from typing import NamedTuple

import numpy as onp


# --------------------------------------------------------------------------- function classes

class FunctionClass(NamedTuple):
    """An axis-aligned ellipse standing for the functions one architecture can reach."""
    label: str
    centre: tuple
    width: float
    height: float


TARGET = (3.05, 2.05)  # f*, the function we would like to find


def function_classes(nested):
    """Four classes F1..F4 of growing size: nested (each inside the next, reaching towards f*)
    or not nested (each larger but drifting away from f*)."""
    classes = []
    for i in range(4):
        width, height = 1.3 + 0.9 * i, 0.9 + 0.62 * i
        if nested:
            centre = (1.0 + 0.26 * i, 0.75 + 0.17 * i)
        else:
            centre = (1.0 + 0.3 * i, 1.2 - 0.62 * i)
        classes.append(FunctionClass(rf"$\mathcal{{F}}_{i + 1}$", centre, width, height))
    return classes


def normalised_radius(points, ellipse):
    """For each (x, y) point, ((x - cx) / a)^2 + ((y - cy) / b)^2 under the square root:
    below 1 inside ``ellipse``, above 1 outside. ``ellipse`` has centre, width and height."""
    (cx, cy), a, b = ellipse.centre, ellipse.width / 2, ellipse.height / 2
    points = onp.asarray(points, dtype=float)
    return onp.sqrt(((points[:, 0] - cx) / a) ** 2 + ((points[:, 1] - cy) / b) ** 2)


def boundary(ellipse, n=720):
    """``n`` points on the outline of ``ellipse``."""
    t = onp.linspace(0, 2 * onp.pi, n, endpoint=False)
    (cx, cy), a, b = ellipse.centre, ellipse.width / 2, ellipse.height / 2
    return onp.stack([cx + a * onp.cos(t), cy + b * onp.sin(t)], axis=1)


def _label_point(cls, angle):
    (cx, cy), a, b = cls.centre, cls.width / 2, cls.height / 2
    return cx + (a - 0.22) * onp.cos(angle), cy + (b - 0.16) * onp.sin(angle)


def draw_function_classes(ax, nested):
    """Draw the four classes and f* into ``ax``."""
    from matplotlib.patches import Ellipse
    for i, cls in enumerate(function_classes(nested)):
        ax.add_patch(Ellipse(cls.centre, cls.width, cls.height, fill=False, lw=1.6, color=f"C{i}"))
        # each label sits just inside its own outline, where the rings lie furthest apart
        angle = onp.radians(75 if nested else 255)
        ax.annotate(cls.label, _label_point(cls, angle), color=f"C{i}", ha="center", va="center", fontsize=10)
    ax.plot(*TARGET, "k*", markersize=12)
    ax.annotate("$f^*$", (TARGET[0] + 0.1, TARGET[1] + 0.05), fontsize=12)
    ax.set_xlim(-0.6, 5.2)
    ax.set_ylim(-2.2, 3.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("nested classes" if nested else "classes that are not nested")


def function_classes_figure():
    """Both panels side by side, not nested on the left; returns the figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    draw_function_classes(axes[0], nested=False)
    draw_function_classes(axes[1], nested=True)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- block diagrams

class Diagram(NamedTuple):
    """A residual block as drawn: layers before the branch point (shared by both branches), the
    residual branch, the shortcut (its layers; empty for the identity), and what follows the sum."""
    title: str
    shared: tuple
    branch: tuple
    shortcut: tuple
    after: tuple


def residual_diagram(use_1x1conv):
    """ResNet's basic block (notebook 1, ``Residual``)."""
    shortcut = ("conv 1x1\nc, stride s",) if use_1x1conv else ()
    return Diagram("Residual, with the 1x1 convolution" if use_1x1conv else "Residual, identity shortcut",
                   (), ("conv 3x3\nc, stride s", "BN", "ReLU", "conv 3x3\nc", "BN"), shortcut, ("ReLU",))


def bottleneck_diagram(use_projection):
    """The bottleneck block (notebook 2, ``Bottleneck``)."""
    shortcut = ("conv 1x1\n4c, stride s",) if use_projection else ()
    return Diagram("Bottleneck, projection shortcut" if use_projection else "Bottleneck, identity shortcut",
                   (), ("conv 1x1\nc, stride s", "BN", "ReLU", "conv 3x3\nc", "BN", "ReLU", "conv 1x1\n4c", "BN"),
                   shortcut, ("ReLU",))


def preact_diagram(use_projection):
    """The pre-activation bottleneck (notebook 2, ``PreActBottleneck``): the projection, when there
    is one, reads the pre-activated input; the identity shortcut reads X itself."""
    branch = ("conv 1x1\nc, stride s", "BN", "ReLU", "conv 3x3\nc", "BN", "ReLU", "conv 1x1\n4c")
    projection = Diagram("pre-activation bottleneck, projection", ("BN", "ReLU"), branch,
                         ("conv 1x1\n4c, stride s",), ())
    identity = Diagram("pre-activation bottleneck, identity", (), ("BN", "ReLU") + branch, (), ())
    return projection if use_projection else identity


def _box(ax, x, y, text, width, colour):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x - width / 2, y - 0.32), width, 0.64, boxstyle="round,pad=0.04",
                                fc=colour, ec="0.3", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


COLOURS = {"conv": "#cfe2f3", "BN": "#fff2cc", "ReLU": "#d9ead3"}


def _colour(label):
    return COLOURS["conv"] if label.startswith("conv") else COLOURS.get(label, "white")


def draw_block(ax, diagram):
    """Draw ``diagram`` left to right into ``ax``: X, the layers, (+), what follows, Y."""
    from matplotlib.patches import Circle
    step, y_main, y_short = 1.25, 1.0, -0.2
    arrow = dict(arrowstyle="->", color="0.2", lw=1)
    x = 0.0
    ax.text(x, y_main, "X", ha="center", va="center", fontsize=11, weight="bold")
    for label in diagram.shared:
        ax.annotate("", (x + step - 0.55, y_main), (x + 0.3, y_main), arrowprops=arrow)
        x += step
        _box(ax, x, y_main, label, 1.0, _colour(label))
    split = x
    for label in diagram.branch:
        ax.annotate("", (x + step - 0.55, y_main), (x + 0.3 if x else 0.25, y_main), arrowprops=arrow)
        x += step
        _box(ax, x, y_main, label, 1.0, _colour(label))
    plus = x + step
    ax.annotate("", (plus - 0.2, y_main), (x + 0.55, y_main), arrowprops=arrow)
    ax.add_patch(Circle((plus, y_main), 0.2, fc="white", ec="0.2"))
    ax.text(plus, y_main, "+", ha="center", va="center", fontsize=12)
    # the shortcut: down from the branch point, along the bottom, up into (+)
    ax.plot([split, split], [y_main - 0.35, y_short], color="0.2", lw=1)
    if diagram.shortcut:
        middle = (split + plus) / 2
        ax.plot([split, middle - 0.6], [y_short, y_short], color="0.2", lw=1)
        _box(ax, middle, y_short, diagram.shortcut[0], 1.2, _colour(diagram.shortcut[0]))
        ax.plot([middle + 0.6, plus], [y_short, y_short], color="0.2", lw=1)
    else:
        ax.plot([split, plus], [y_short, y_short], color="0.2", lw=1)
        ax.text((split + plus) / 2, y_short - 0.25, "identity: X itself", ha="center", va="top", fontsize=8)
    ax.annotate("", (plus, y_main - 0.2), (plus, y_short), arrowprops=arrow)
    x = plus
    for label in diagram.after:
        ax.annotate("", (x + step - 0.55, y_main), (x + 0.2, y_main), arrowprops=arrow)
        x += step
        _box(ax, x, y_main, label, 1.0, _colour(label))
    ax.annotate("", (x + step - 0.2, y_main), (x + 0.55 if diagram.after else x + 0.2, y_main), arrowprops=arrow)
    ax.text(x + step, y_main, "Y", ha="center", va="center", fontsize=11, weight="bold")
    ax.set_xlim(-0.5, 14.6)
    ax.set_ylim(-0.9, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(diagram.title, fontsize=10)


def blocks_figure(diagrams):
    """One row per diagram; returns the figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(diagrams), 1, figsize=(11, 1.9 * len(diagrams)), squeeze=False)
    for ax, diagram in zip(axes[:, 0], diagrams):
        draw_block(ax, diagram)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- ResNet-18

class Stage(NamedTuple):
    """One top-level part of ResNet-18 as drawn: its name, what it holds, its output
    (channels, height, width) for a 224x224 input, and how many layers with weights it has."""
    name: str
    holds: str
    output: tuple
    weight_layers: int


RESNET18 = (
    Stage("stem", "conv 7x7, 64, stride 2\nBN, ReLU\nmax pool 3x3, stride 2", (64, 56, 56), 1),
    Stage("stage 1", "2 x Residual(64)", (64, 56, 56), 4),
    Stage("stage 2", "Residual(128, 1x1, stride 2)\nResidual(128)", (128, 28, 28), 4),
    Stage("stage 3", "Residual(256, 1x1, stride 2)\nResidual(256)", (256, 14, 14), 4),
    Stage("stage 4", "Residual(512, 1x1, stride 2)\nResidual(512)", (512, 7, 7), 4),
    Stage("head", "global average pool\ndense, 10", (10,), 1),
)


def resnet18_figure():
    """ResNet-18 as a column of its parts with their output shapes; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    fig, ax = plt.subplots(figsize=(11, 2.8))
    ax.text(-0.9, 0, "image\n1 x 224 x 224", ha="center", va="center", fontsize=8)
    for i, stage in enumerate(RESNET18):
        x = 1.1 + 2.05 * i
        colour = "#cfe2f3" if stage.name.startswith("stage") else "#eeeeee"
        ax.add_patch(FancyBboxPatch((x - 0.85, -0.75), 1.7, 1.5, boxstyle="round,pad=0.05", fc=colour, ec="0.3"))
        ax.text(x, 0.5, stage.name, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x, -0.05, stage.holds, ha="center", va="center", fontsize=7)
        ax.text(x, -1.05, " x ".join(map(str, stage.output)), ha="center", va="center", fontsize=8)
        ax.text(x, 0.98, f"{stage.weight_layers} weight layer{'s' if stage.weight_layers > 1 else ''}",
                ha="center", va="center", fontsize=7, color="0.35")
        ax.annotate("", (x - 0.9, 0), (x - 1.15, 0), arrowprops=dict(arrowstyle="->", color="0.2"))
    total = sum(stage.weight_layers for stage in RESNET18)
    ax.set_title(f"ResNet-18: {total} layers with weights; output shapes (channels x height x width) "
                 "for a 224x224 input", fontsize=10)
    ax.set_xlim(-1.6, 12.3)
    ax.set_ylim(-1.3, 1.2)
    ax.axis("off")
    fig.tight_layout()
    return fig
