"""Gluon's convolution, batch norm and dense layers learn their input size without a symbol graph.

A Gluon layer made without its input size (``nn.Conv2D(64, 3)``) learns it on
its first forward pass: MXNet 1.9 builds the layer's symbolic graph and runs
MXNet's shape inference over it, about 0.3 ms of Python per layer. The
observers build hundreds of small layers per notebook (every Residual they
try, ResNet-18 twice), so that was about a sixth of a notebook's CPU in the
sandbox.

For these three stock layers the missing size is one number read off the
input: the channels of a convolution's NCHW input (per group), of a batch
norm's axis, the flattened (or last) size of a dense layer's. The sandbox
worker installs :func:`install` before any notebook runs; each layer sets
the size MXNet's inference sets, through the same ``Parameter.shape`` check.
Anything else (a subclass, another layout, an input MXNet would refuse, a
size already given) goes MXNet's own way, which also says what is wrong.
"""
import math

from mxnet.gluon import HybridBlock, nn


def _known(dims):
    return all(isinstance(n, int) and n > 0 for n in dims)


def _unknown(n):
    """A dimension Gluon has yet to learn: 0, or -1 in MXNet's NumPy shape mode."""
    return n in (0, -1)


def _conv2d(layer, shape):
    """Conv2D (NCHW): the weight is (filters, channels / groups, kernel height, kernel width)."""
    k, weight = layer._kwargs, layer.weight.shape
    kernel, stride, dilate, pad = (tuple(k.get(key, ())) for key in ("kernel", "stride", "dilate", "pad"))
    groups, filters = k.get("num_group", 1), k.get("num_filter")
    if (k.get("layout", "NCHW") != "NCHW" or len(shape) != 4 or not _known(shape[1:]) or len(weight) != 4
            or not _unknown(weight[1]) or weight[0] != filters or tuple(weight[2:]) != kernel
            or not (len(kernel) == len(stride) == len(dilate) == len(pad) == 2)
            or not _known((groups, filters, *kernel, *stride, *dilate)) or shape[1] % groups or filters % groups):
        return None
    for side, size, gap, margin in zip(shape[2:], kernel, dilate, pad):
        if side + 2 * margin < gap * (size - 1) + 1:  # MXNet refuses a kernel larger than the padded input
            return None
    return {layer.weight: (filters, shape[1] // groups, *kernel)}


def _batch_norm(layer, shape):
    """BatchNorm: gamma, beta and the running mean and variance have one value per channel."""
    axis = layer._kwargs.get("axis", 1)
    params = (layer.gamma, layer.beta, layer.running_mean, layer.running_var)
    if (not -len(shape) <= axis < len(shape) or not _known([shape[axis]])
            or any(len(p.shape) != 1 or not _unknown(p.shape[0]) for p in params)):
        return None
    return {p: (shape[axis],) for p in params}


def _dense(layer, shape):
    """Dense: the weight is (units, inputs), inputs the input's size past the batch axis when it
    flattens, else its last axis."""
    weight = layer.weight.shape
    if len(shape) < 2 or not _known(shape[1:]) or len(weight) != 2 or not _unknown(weight[1]) or not _known(weight[:1]):
        return None
    return {layer.weight: (weight[0], math.prod(shape[1:]) if layer._flatten else shape[-1])}


_SHAPES = {nn.Conv2D: _conv2d, nn.BatchNorm: _batch_norm, nn.Dense: _dense}


def infer_shape(self, *args):
    """HybridBlock.infer_shape for the stock layers above; MXNet's own for anything else."""
    rule = _SHAPES.get(type(self))
    shape = getattr(args[0], "shape", None) if len(args) == 1 else None
    shapes = rule(self, shape) if rule is not None and isinstance(shape, tuple) else None
    if shapes is None:
        return HybridBlock.infer_shape(self, *args)
    for param, value in shapes.items():
        param.shape = value


def install():
    """Let the stock layers above infer their parameters' shapes as :func:`infer_shape` does."""
    for layer in _SHAPES:
        layer.infer_shape = infer_shape
