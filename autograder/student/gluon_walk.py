"""Looking inside a student's Gluon block without relying on names.

Gluon names layers after a global counter (``conv5``, ``batchnorm4``), so
names depend on what ran before. These helpers find layers by their kind and
settings instead, and read or set their parameters as NumPy arrays.
"""
import contextlib
import ctypes
import types

import numpy as onp

from .lazy_mxnet import autograd, gluon, init, made_when_loaded, mnp, mxnet


def children(block):
    """Direct sub-blocks, in registration order."""
    found = []
    for child in block._children.values():
        child = child() if callable(child) and not isinstance(child, gluon.Block) else child
        found.append(child)
    return found


def leaves(block):
    """All blocks without sub-blocks, depth first, each once."""
    seen, order = set(), []

    def visit(b):
        if id(b) in seen:
            return
        seen.add(id(b))
        kids = children(b)
        if not kids:
            order.append(b)
        for kid in kids:
            visit(kid)

    visit(block)
    return order


def convs(block):
    return [b for b in leaves(block) if isinstance(b, gluon.nn.Conv2D)]


def batch_norms(block):
    return [b for b in leaves(block) if isinstance(b, gluon.nn.BatchNorm)]


def max_pools(block):
    return [b for b in leaves(block) if isinstance(b, gluon.nn.MaxPool2D)]


def kernel(conv):
    return tuple(conv._kwargs["kernel"])


def stride(layer):
    return tuple(layer._kwargs["stride"])


def padding(layer):
    return tuple(layer._kwargs["pad"])


def get(param):
    """A parameter's value as a NumPy float64 array (None for a missing bias)."""
    return None if param is None else param.data().asnumpy().astype(onp.float64)


@made_when_loaded
def _canonical_initializer():
    class Canonical(init.Initializer):
        """Fills a parameter, once its shape is known, with the canonical values of a seed and role."""

        def __init__(self, seed, kind):
            super().__init__()
            self.seed, self.kind = seed, kind

        def _init_weight(self, _, arr):
            from .parts import canonical
            arr[:] = canonical(self.seed, self.kind, arr.shape, arr.dtype)

    return Canonical


def _canonical_roles(block):
    """(parameter, role) for every parameter of a convolution, batch norm or dense layer of ``block``."""
    for leaf in leaves(block):
        if isinstance(leaf, (gluon.nn.Conv2D, gluon.nn.Dense)):
            kind = "conv" if isinstance(leaf, gluon.nn.Conv2D) else "dense"
            yield leaf.weight, f"{kind}.weight"
            if leaf.bias is not None:
                yield leaf.bias, f"{kind}.bias"
        elif isinstance(leaf, gluon.nn.BatchNorm):
            yield from ((leaf.gamma, "bn.gamma"), (leaf.beta, "bn.beta"),
                        (leaf.running_mean, "bn.mean"), (leaf.running_var, "bn.var"))


def initialize_canonical(block, seed):
    """Initialise ``block`` for inference so that its convolutions, batch norms and dense layers
    hold the canonical values of ``seed`` (see parts.canonical), any other
    parameter Gluon's default. The values are written as each parameter gets its shape (at once,
    or on the first forward pass), and no gradient is kept (read whether a parameter trains
    before): for ResNet-18 this saves making and copying its 11 M weights several times."""
    block.collect_params().setattr("grad_req", "null")
    with _canonical_initializers(block, seed):
        block.initialize(force_reinit=True)


@contextlib.contextmanager
def _canonical_initializers(block, seed):
    """Meanwhile every parameter of ``block``'s convolutions, batch norms and dense layers has the
    canonical values of ``seed`` as its own initializer: an initialisation started meanwhile gives
    them, also where the parameter gets its shape later. Each parameter's own initializer (None
    unless the code that made it gave one) is back afterwards, so a later initialisation of the
    block is Gluon's as usual."""
    Canonical = _canonical_initializer()
    saved = []
    for param, kind in list(_canonical_roles(block)):
        saved.append((param, param.init))
        param.init = Canonical(seed, kind)
        _canonical_when_shaped(param, param.init)
    try:
        yield
    finally:
        for param, own in saved:
            param.init = own


def _canonical_when_shaped(param, initializer):
    """Let ``param``, once it has its shape, become one array of the canonical values of
    ``initializer`` (a Canonical), written where MXNet allocated it. Gluon's own way (which the
    Canonical initializer goes through) makes an array of zeros, writes the values into it and
    copies it to the parameter's context: for ResNet-18's 11 M weights two passes over 44 MB and
    their page faults more, in every notebook's process. Anything unusual (another initializer
    by then, data given, several contexts or another device, a sparse parameter, a shape still
    unknown, MXNet's legacy array mode) goes Gluon's own way, to the same values."""
    gluons_own = type(param)._finish_deferred_init

    def finish(self):
        pending = self._deferred_init
        if (not pending or pending[0] is not initializer or pending[3] is not None
                or list(pending[1]) != [mxnet.cpu()] or self._stype != "default" or not _known(self.shape)
                or not mxnet.util.is_np_array()):
            return gluons_own(self)
        self._deferred_init = ()
        from .parts import canonical
        data = mnp.empty(self.shape, dtype=self.dtype, ctx=mxnet.cpu())
        canonical(initializer.seed, initializer.kind, self.shape, out=_numpy_view(data))
        data.copyto = lambda _: data  # _init_impl's copy to the one context data is on: data itself
        try:
            with autograd.pause():
                self._init_impl(data, pending[1])
        finally:
            del data.copyto

    param._finish_deferred_init = types.MethodType(finish, param)


def _numpy_view(array):
    """A NumPy array over the memory of the MXNet CPU array ``array``: what is written into it,
    ``array`` holds (no copy either way). Only while ``array`` lives, with no MXNet operation
    pending on it."""
    lib, check = mxnet.base._LIB, mxnet.base.check_call
    check(lib.MXNDArrayWaitToWrite(array.handle))
    address = ctypes.c_void_p()
    check(lib.MXNDArrayGetData(array.handle, ctypes.byref(address)))
    dtype = onp.dtype(array.dtype)
    memory = (ctypes.c_char * (array.size * dtype.itemsize)).from_address(address.value)
    return onp.frombuffer(memory, dtype=dtype).reshape(array.shape)


def _known(shape):
    """Whether Gluon knows every dimension of ``shape`` (an unknown one is 0 or -1, or no shape yet)."""
    return shape is not None and min(shape, default=1) > 0


def has_biases(block):
    """Whether every convolution and dense layer carries a bias."""
    layers = [b for b in leaves(block) if isinstance(b, (gluon.nn.Conv2D, gluon.nn.Dense))]
    return all(layer.bias is not None for layer in layers)


# ------------------------------------------------ running a student's block

def forward(block, x):
    """``block`` applied to the NumPy array ``x``, in inference mode."""
    with autograd.predict_mode():
        return block(mnp.array(x, dtype="float32"))


def run(block, shape, seed=0):
    """Initialise ``block`` and push a canonical batch of ``shape`` through it.

    Its convolutions, batch norms and dense layers get the canonical values of ``seed`` (the same
    whatever ran before, and cheaper to make than Gluon's random ones); whether a parameter
    trains is left as it is."""
    from .parts import canonical
    with _canonical_initializers(block, seed):
        block.initialize(force_reinit=True)
    return forward(block, canonical(seed, "input", shape))


def shape_of(value):
    return [int(n) for n in value.shape]


def _swapped_defaults(functions, swaps):
    """[(function, attribute, old value)] after replacing, in each function's
    default arguments, every value that ``swaps`` maps (by identity)."""
    changed = []
    for function in functions:
        defaults = getattr(function, "__defaults__", None)
        if defaults and any(id(v) in swaps for v in defaults):
            changed.append((function, "__defaults__", defaults))
            function.__defaults__ = tuple(swaps.get(id(v), v) for v in defaults)
        kwdefaults = getattr(function, "__kwdefaults__", None)
        if kwdefaults and any(id(v) in swaps for v in kwdefaults.values()):
            changed.append((function, "__kwdefaults__", kwdefaults))
            function.__kwdefaults__ = {k: swaps.get(id(v), v) for k, v in kwdefaults.items()}
    return changed


@contextlib.contextmanager
def replaced(function, **stand_ins):
    """Temporarily rebind names in the namespace ``function`` looks its globals up in.

    This is how a check swaps an earlier exercise (``Residual``) for a stand-in
    while it judges a later one (``resnet_block``) on its own. Every way a
    student may reach the earlier piece is swapped: its own name, any other
    global bound to the same object (``Unit = Residual``), and default
    arguments holding it (``def resnet18(num_classes=10, stage=resnet_block)``)
    of ``function`` and of the namespace's other functions."""
    space = getattr(function, "__globals__", None)
    if not isinstance(space, dict):
        yield
        return
    swaps = {id(space[name]): stand_in for name, stand_in in stand_ins.items() if name in space}
    aliases = {name: swaps[id(value)] for name, value in space.items() if id(value) in swaps}
    rebind = {**aliases, **stand_ins}
    saved = {name: space[name] for name in rebind if name in space}
    functions = [v for v in [function, *space.values()] if isinstance(v, types.FunctionType)]
    functions = list({id(v): v for v in functions}.values())
    changed = _swapped_defaults(functions, swaps)
    space.update(rebind)
    try:
        yield
    finally:
        for fn, attribute, value in changed:
            setattr(fn, attribute, value)
        for name in rebind:
            space.pop(name, None)
        space.update(saved)


def out_side(side, stride):
    """Height or width after a convolution or pooling with padding that keeps the size at stride 1."""
    return (side - 1) // stride + 1
