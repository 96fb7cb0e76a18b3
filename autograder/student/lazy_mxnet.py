"""MXNet's modules for the checks, imported when first used.

The instructor's grader imports the checks for their judges, which compare
plain numbers and never need MXNet; importing it there (about 2 s of CPU)
would only delay every grading run. The names here stand for MXNet's modules
and import them on first use; the checks' stand-in classes, which subclass
Gluon blocks, are made on first use too (:func:`made_when_loaded`). The
sandboxed worker calls :func:`load` before any notebook runs, so inside the
sandbox every check is bound to MXNet's real modules, and every stand-in
class made from them, before a student's code could replace either.
"""
import functools
import importlib


class _Module:
    """Stands for the module ``name``; the first attribute read imports it."""
    __slots__ = ("_name", "_module")

    def __init__(self, name):
        self._name, self._module = name, None

    def _load(self):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return self._module

    def __getattr__(self, attribute):
        return getattr(self._load(), attribute)

    def __repr__(self):
        return f"<{self._name}, {'loaded' if self._module is not None else 'imported when first used'}>"


mxnet = _Module("mxnet")
autograd = _Module("mxnet.autograd")
gluon = _Module("mxnet.gluon")
init = _Module("mxnet.initializer")
mnp = _Module("mxnet.numpy")


_FACTORIES = []


def made_when_loaded(factory):
    """``factory`` (no arguments; it makes a class from MXNet's) run once, on first use or by :func:`load`."""
    cached = functools.cache(factory)
    _FACTORIES.append(cached)
    return cached


def load():
    """Import every module named here now, and make every class registered with :func:`made_when_loaded`."""
    for module in (mxnet, autograd, gluon, init, mnp):
        module._load()
    for factory in _FACTORIES:
        factory()
