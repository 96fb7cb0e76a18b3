"""Let MXNet 1.9.1 (and d2l 1.0.3) import and run on NumPy 2 and Python 3.12.

MXNet 1.9.1 is the last release of a retired project. It was written for
NumPy 1.x and Python <= 3.11, and today's Google Colab has NumPy 2 and Python
3.12; NumPy cannot simply be downgraded there (SciPy, which MXNet imports, is
built against NumPy 2). What MXNet actually needs from the old world is small:

* module attributes NumPy 2 removed, used by MXNet's code at import time or at
  run time (``np.PZERO``, ``np.sometrue``, ``np.mirr`` ...). The list below is
  exactly the set found by scanning MXNet's and d2l's installed source for
  attributes of the ``numpy`` module that exist in NumPy 1.23 but not in
  NumPy 2.x; ``tests/test_colab_like.py`` repeats that scan and fails if a name
  is missing here;
* ``distutils.version`` (``LooseVersion``, ``StrictVersion``), gone from the
  standard library in Python 3.12. Where setuptools is installed (as on
  Colab) it still provides ``distutils``; otherwise a minimal stand-in is
  registered.

:func:`install` adds only what is missing and never replaces anything that
exists, so on the course's pinned stack (Python 3.11, NumPy 1.23.5) it changes
nothing. Call it before ``import mxnet``; calling it again does nothing more.
This module imports nothing but NumPy and the standard library.
"""
import functools
import importlib.util
import re
import sys
import types
import warnings

__all__ = ["install", "NUMPY_REMOVED"]

_INF = float("inf")
_NAN = float("nan")


def _removed_function(name, replacement):
    """A stand-in for a function NumPy removed before 2.0 and MXNet only names.

    NumPy 1.20-1.24 kept such names (the financial functions) as stubs that
    fail when called; this does the same, with the same advice.
    """
    def removed(*args, **kwargs):
        raise RuntimeError(f"numpy.{name} was removed from NumPy; {replacement}")
    removed.__name__ = name
    removed.__qualname__ = name
    return removed


def _msort(a):
    import numpy
    return numpy.sort(a, axis=0)


def _in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
    import numpy
    return numpy.isin(numpy.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert, **kwargs)


def _trapz(y, x=None, dx=1.0, axis=-1):
    import numpy
    return numpy.trapezoid(y, x=x, dx=dx, axis=axis)


def _compat_module():
    """The few names of ``numpy.compat`` (removed in NumPy 2.0) MXNet uses."""
    module = types.ModuleType("numpy.compat", "Stand-in for numpy.compat, removed in NumPy 2.0.")
    module.basestring = str
    module.unicode = str
    module.bytes = bytes
    module.long = int
    module.integer_types = (int,)
    return module


_FINANCIAL = "use the numpy_financial package instead."

# name -> factory of the value to restore (called with the numpy module).
# Keep in sync with MXNet's and d2l's source: tests/test_colab_like.py scans it.
NUMPY_REMOVED = {
    # Constants removed in NumPy 2.0.
    "PZERO": lambda np: 0.0,
    "NZERO": lambda np: -0.0,
    "PINF": lambda np: _INF,
    "NINF": lambda np: -_INF,
    "Inf": lambda np: _INF,
    "NaN": lambda np: _NAN,
    "NAN": lambda np: _NAN,
    # Function aliases removed in NumPy 2.0 (and 2.x for in1d and trapz).
    "sometrue": lambda np: np.any,
    "alltrue": lambda np: np.all,
    "product": lambda np: np.prod,
    "round_": lambda np: np.round,
    "msort": lambda np: _msort,
    "in1d": lambda np: _in1d,
    "trapz": lambda np: getattr(np, "trapezoid", _trapz),
    # Builtin-type alias removed in NumPy 1.24 (only mxnet.test_utils uses it).
    "int": lambda np: int,
    # numpy.compat, removed in NumPy 2.0 (MXNet uses compat.basestring).
    "compat": lambda np: _compat_module(),
    # Financial functions: stubs since NumPy 1.20, gone in 2.0. MXNet's
    # numpy.fallback module copies them at import time.
    **{name: (lambda np, name=name: _removed_function(name, _FINANCIAL))
       for name in ("mirr", "npv", "pmt", "ppmt", "pv", "rate")},
}


def _has(module, name):
    """hasattr without the deprecation warnings NumPy 1.x gives for old aliases."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            getattr(module, name)
        except AttributeError:
            return False
        except Exception:  # NumPy 2's module __getattr__ raises for removed names
            return False
    return True


def install_numpy_aliases():
    """Restore the NumPy attributes MXNet 1.9.1 needs; return the names added."""
    import numpy
    added = []
    for name, make in NUMPY_REMOVED.items():
        if not _has(numpy, name):
            setattr(numpy, name, make(numpy))
            added.append(name)
    return added


# --- distutils ---------------------------------------------------------------

@functools.total_ordering
class LooseVersion:
    """Version numbering for anarchists and software realists (distutils')."""

    component_re = re.compile(r"(\d+ | [a-z]+ | \.)", re.VERBOSE)

    def __init__(self, vstring=None):
        if vstring:
            self.parse(vstring)

    def parse(self, vstring):
        self.vstring = vstring
        parts = [x for x in self.component_re.split(vstring) if x and x != "."]
        self.version = [int(x) if x.isdigit() else x for x in parts]

    def _cmp(self, other):
        if isinstance(other, str):
            other = LooseVersion(other)
        elif not isinstance(other, LooseVersion):
            return NotImplemented
        mine = [(0, x) if isinstance(x, int) else (1, x) for x in self.version]
        theirs = [(0, x) if isinstance(x, int) else (1, x) for x in other.version]
        return (mine > theirs) - (mine < theirs)

    def __eq__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c == 0

    def __lt__(self, other):
        c = self._cmp(other)
        return c if c is NotImplemented else c < 0

    def __str__(self):
        return self.vstring

    def __repr__(self):
        return f"LooseVersion ('{self}')"


@functools.total_ordering
class StrictVersion:
    """Version numbers of the form 1.2[.3][{a,b}4] (distutils')."""

    version_re = re.compile(r"^(\d+) \. (\d+) (\. (\d+))? ([ab](\d+))?$", re.VERBOSE | re.ASCII)

    def __init__(self, vstring=None):
        if vstring:
            self.parse(vstring)

    def parse(self, vstring):
        match = self.version_re.match(vstring)
        if not match:
            raise ValueError(f"invalid version number '{vstring}'")
        major, minor, patch, prerelease, prerelease_num = match.group(1, 2, 4, 5, 6)
        self.vstring = vstring
        self.version = (int(major), int(minor), int(patch or 0))
        self.prerelease = (prerelease[0], int(prerelease_num)) if prerelease else None

    def _key(self):
        # A final release sorts after its pre-releases.
        return self.version, (1,) if self.prerelease is None else (0, *self.prerelease)

    def __eq__(self, other):
        if isinstance(other, str):
            other = StrictVersion(other)
        if not isinstance(other, StrictVersion):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other):
        if isinstance(other, str):
            other = StrictVersion(other)
        if not isinstance(other, StrictVersion):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self):
        return self.vstring

    def __repr__(self):
        return f"StrictVersion ('{self}')"


def install_distutils():
    """Make ``from distutils.version import LooseVersion`` work; return True if a stand-in was registered."""
    if "distutils.version" in sys.modules:
        return False
    if sys.version_info < (3, 12):
        return False  # still in the standard library
    if importlib.util.find_spec("distutils") is not None:
        return False  # setuptools provides it (as on Colab)
    package = types.ModuleType("distutils", "Stand-in for distutils (removed in Python 3.12).")
    package.__path__ = []
    version = types.ModuleType("distutils.version", "LooseVersion and StrictVersion, as distutils had them.")
    version.LooseVersion = LooseVersion
    version.StrictVersion = StrictVersion
    package.version = version
    sys.modules["distutils"] = package
    sys.modules["distutils.version"] = version
    return True


def install():
    """Add what MXNet 1.9.1 needs and the running NumPy/Python lacks.

    Returns the list of what was added (empty on the pinned stack), e.g.
    ``['numpy.PZERO', ..., 'distutils']``.
    """
    added = [f"numpy.{name}" for name in install_numpy_aliases()]
    if install_distutils():
        added.append("distutils")
    return added
