"""MXNet's modules for the checks, imported when first used.

The instructor's grader imports the checks for their judges, which compare
plain numbers and never need MXNet; importing it there (about 2 s of CPU)
would only delay every grading run. The names here stand for MXNet's modules
and import them on first use. The sandboxed worker calls :func:`load` before
any notebook runs, so inside the sandbox every check is bound to MXNet's real
modules before a student's code could put something else in ``sys.modules``.
"""
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


def load():
    """Import every module named here now."""
    for module in (mxnet, autograd, gluon, init, mnp):
        module._load()
