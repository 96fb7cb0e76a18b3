"""Set up a Google Colab runtime for the course notebooks: ``colab.setup()``.

Every notebook's setup cell installs this package (``pip install --no-deps``
from the repository) and calls :func:`setup` -- on Colab only, or anywhere
when the environment variable ``RESNET_COURSE_SETUP`` is set (the tests use
it). Outside Colab the cell does nothing, so the notebooks run unchanged in
local Jupyter and under nbgrader. A failure stops the cell with one sentence
that says why (:class:`SetupFailed`), and the notebooks' import cell calls
:func:`require_setup`, which asks for the setup cell in a restarted runtime.

Colab has Python 3.12 and NumPy 2, while MXNet 1.9.1 (the last release) and
d2l 1.0.3 were made for NumPy 1.x; d2l even pins ``numpy==1.23.5``, which has
no Python 3.12 wheel, and downgrading NumPy breaks SciPy. So both are
installed with ``--no-deps``, leaving Colab's NumPy alone, and
:mod:`autograder.student.compat` restores the few old NumPy names and ``distutils``
that MXNet needs before it is imported.

On a GPU runtime MXNet's CUDA 11.2 build (``mxnet-cu112``) is used. It needs
the CUDA 11 runtime, cuBLAS, cuDNN 8, cuFFT, cuRAND, cuSOLVER, NVRTC, NVTX and
NCCL, which Colab (CUDA 12) does not have. They come from pip's
``nvidia-*-cu11`` wheels, installed into a private folder -- installed
normally they would land in the same ``nvidia/`` package folders as the CUDA
12 libraries of Colab's PyTorch -- and are loaded into the process, in
dependency order and with ``RTLD_GLOBAL``, before MXNet: the dynamic linker
then finds them by their sonames when it loads ``libmxnet.so``, with no
``LD_LIBRARY_PATH`` (which a running kernel cannot change) and no restart.
The GPU build is tried in a separate Python process first (a convolution on
the GPU, compared with the CPU); if anything fails -- download, loading,
a GPU MXNet has no kernels for (it supports compute capability 5.0 to 8.x,
e.g. T4, A100, L4, but not H100) -- the CPU build is installed instead and
one sentence says so.

Environment variables (all optional): ``RESNET_COURSE_DEVICE`` = ``auto``
(default), ``cpu`` or ``gpu``; ``RESNET_CUDA11_DIR``, the private folder for
the CUDA 11 libraries; ``RESNET_COURSE_SETUP`` forces the setup outside Colab.
"""
import ctypes
import glob
import importlib
import os
import re
import shutil
import struct
import subprocess
import sys
import time

from . import compat

MXNET_VERSION = "1.9.1"
D2L_VERSION = "1.0.3"
MXNET_CPU = f"mxnet=={MXNET_VERSION}"
MXNET_GPU = f"mxnet-cu112=={MXNET_VERSION}"
D2L = f"d2l=={D2L_VERSION}"

# The CUDA 11 libraries libmxnet.so of mxnet-cu112 1.9.1 links against (its
# DT_NEEDED entries, besides the driver's libcuda.so.1), from pip's wheels.
# CUDA 11.8 libraries serve a binary built with CUDA 11.2 (same sonames,
# minor-version compatibility), and cuDNN 8.9 one built with an earlier 8.x.
CUDA11_PACKAGES = [
    "nvidia-cuda-runtime-cu11==11.8.89",   # libcudart.so.11.0
    "nvidia-cublas-cu11==11.11.3.6",       # libcublas.so.11, libcublasLt.so.11
    "nvidia-cudnn-cu11==8.9.6.50",         # libcudnn.so.8 and its sub-libraries
    "nvidia-cufft-cu11==10.9.0.58",        # libcufft.so.10
    "nvidia-curand-cu11==10.3.0.86",       # libcurand.so.10
    "nvidia-cusolver-cu11==11.4.1.48",     # libcusolver.so.11
    "nvidia-cuda-nvrtc-cu11==11.8.89",     # libnvrtc.so.11.2, libnvrtc-builtins
    "nvidia-nvtx-cu11==11.8.86",           # libnvToolsExt.so.1
    "nvidia-nccl-cu11==2.21.5",            # libnccl.so.2
]

# Which files of those wheels to load, as globs under <folder>/nvidia/. The
# order here does not matter: preload_order() sorts them by their DT_NEEDED
# entries. Deliberately absent: libnvblas (it would take over the BLAS calls
# of NumPy), libOpenCL, libcufftw, libcusolverMg (not needed).
CUDA11_LIBRARIES = [
    "cuda_runtime/lib/libcudart.so.11.0",
    "nvtx/lib/libnvToolsExt.so.1",
    "cublas/lib/libcublasLt.so.11",
    "cublas/lib/libcublas.so.11",
    "cufft/lib/libcufft.so.10",
    "curand/lib/libcurand.so.10",
    "cusolver/lib/libcusolver.so.11",
    "cuda_nvrtc/lib/libnvrtc-builtins.so.11.*",
    "cuda_nvrtc/lib/libnvrtc.so.11.2",
    "cudnn/lib/libcudnn_ops_infer.so.8",
    "cudnn/lib/libcudnn_ops_train.so.8",
    "cudnn/lib/libcudnn_cnn_infer.so.8",
    "cudnn/lib/libcudnn_cnn_train.so.8",
    "cudnn/lib/libcudnn_adv_infer.so.8",
    "cudnn/lib/libcudnn_adv_train.so.8",
    "cudnn/lib/libcudnn.so.8",
    "nccl/lib/libnccl.so.2",
]

# MXNet 1.9.1's CUDA 11.2 build carries kernels for compute capability 5.0 to
# 8.6; 8.x devices above 8.6 (L4: 8.9) run the 8.6 ones, 9.0 and later do not.
MAX_COMPUTE_MAJOR = 8

SETUP_ENV = "RESNET_COURSE_SETUP"
DEVICE_ENV = "RESNET_COURSE_DEVICE"
CUDA_DIR_ENV = "RESNET_CUDA11_DIR"

_state = {"done": False, "device": None}


class SetupError(Exception):
    """A setup step failed; the message is one short clause for the student."""


class SetupFailed(Exception):
    """Stops a notebook cell with its message alone: one sentence, no traceback.

    IPython shows an exception through its ``_render_traceback_`` when it has
    one, so the cell's output is just the sentence; it is still an error, so
    *Run all* stops there instead of running on into cells that cannot work.
    (``SystemExit`` would add "An exception has occurred, use %tb" and a
    warning on stderr.) The setup cell defines the same class for the one
    failure that comes before this package is installed.
    """

    def _render_traceback_(self):
        return [str(self)]


# --- where we are --------------------------------------------------------------

def on_colab():
    """True in a Google Colab kernel."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def wanted():
    """True where the setup cell should act: on Colab, or when forced by RESNET_COURSE_SETUP."""
    return on_colab() or bool(os.environ.get(SETUP_ENV))


def cuda11_dir():
    """The private folder for the CUDA 11 libraries."""
    return os.environ.get(CUDA_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "resnet-course", "cuda11")


def log_path():
    return os.path.join(os.path.expanduser("~"), ".cache", "resnet-course", "setup.log")


def gpu_info():
    """(name, (major, minor) or None) of the first NVIDIA GPU, or None without one."""
    if not shutil.which("nvidia-smi"):
        return None
    for query in ("name,compute_cap", "name"):
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        if out.returncode == 0 and lines:
            fields = [f.strip() for f in lines[0].split(",")]
            capability = None
            if len(fields) > 1:
                try:
                    major, minor = fields[1].split(".")
                    capability = (int(major), int(minor))
                except ValueError:
                    capability = None
            return fields[0], capability
    return None


# --- running pip -----------------------------------------------------------------

# What pip says when it cannot reach the server (pip >= 25: "connection-failed";
# older pips: urllib3's NewConnectionError; DNS and timeouts in both), and when
# what it was asked for does not exist (an HTTP 404, or a local path). The
# setup cell reads pip's output for the same words (boilerplate.setup_source).
PIP_NO_NETWORK = ("connection-failed", "Failed to establish a new connection", "Failed to connect",
                  "Name or service not known", "Temporary failure in name resolution", "Network is unreachable",
                  "timed out")
PIP_NOT_FOUND = ("HTTP error 404", "does not exist")


def pip_failure(output, what):
    """Why pip could not install ``what``, in one clause, from pip's output."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)  # pip colours its errors when run in a notebook
    if any(marker in output for marker in PIP_NO_NETWORK):
        return f"there is no internet connection (pip could not download {what})"
    if any(marker in output for marker in PIP_NOT_FOUND):
        return f"{what} was not found"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return f"pip could not install {what}: " + " ".join(lines[-2:])[-300:]


def _log(text):
    os.makedirs(os.path.dirname(log_path()), exist_ok=True)
    with open(log_path(), "a") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def pip(*args, timeout=1800):
    """Run ``python -m pip install <args>`` quietly; raise SetupError on failure.

    pip's output goes to the setup log, never into the notebook.
    """
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-input", *args]
    _log("$ " + " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SetupError(f"pip took longer than {timeout // 60} minutes") from None
    _log(result.stdout + result.stderr)
    if result.returncode != 0:
        what = [a for a in args if not a.startswith("-") and "/" not in a]
        raise SetupError(pip_failure(result.stdout + result.stderr, " ".join(what) or "a package"))
    return result


def pip_uninstall(*names):
    command = [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *names]
    _log("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    _log(result.stdout + result.stderr)


def installed(distribution):
    """The installed version of a distribution, or None."""
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# --- ELF: which library needs which --------------------------------------------------

def elf_needed(path):
    """The DT_NEEDED sonames of a 64-bit little-endian ELF shared library."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", header, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", header, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = [struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(shnum)]
        needed = []
        for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
            if kind != 6:  # SHT_DYNAMIC
                continue
            strtab_offset, strtab_size = sections[link][4], sections[link][5]
            f.seek(strtab_offset)
            strtab = f.read(strtab_size)
            f.seek(offset)
            dynamic = f.read(size)
            for i in range(0, size, entsize or 16):
                tag, value = struct.unpack_from("<qQ", dynamic, i)
                if tag == 0:  # DT_NULL
                    break
                if tag == 1:  # DT_NEEDED
                    needed.append(strtab[value:strtab.index(b"\0", value)].decode())
        return needed


def preload_order(paths, needed=elf_needed):
    """``paths`` sorted so that every library comes after the ones it needs.

    Dependencies are matched by file name (which is the soname for the pip
    wheels' libraries); libraries outside ``paths`` (libc, libstdc++ ...) are
    left to the system. Ties keep the given order.
    """
    by_name = {os.path.basename(p): p for p in paths}
    deps = {p: [by_name[n] for n in needed(p) if n in by_name and by_name[n] != p] for p in paths}
    ordered, state = [], {}

    def visit(path, chain):
        if state.get(path) == "done":
            return
        if state.get(path) == "visiting":
            raise ValueError("circular library dependency: " + " -> ".join(os.path.basename(p) for p in chain + [path]))
        state[path] = "visiting"
        for dep in deps[path]:
            visit(dep, chain + [path])
        state[path] = "done"
        ordered.append(path)

    for path in paths:
        visit(path, [])
    return ordered


def cuda11_library_paths(folder=None):
    """The CUDA 11 library files to preload from ``folder``; SetupError if one is missing."""
    root = os.path.join(folder or cuda11_dir(), "nvidia")
    paths = []
    for pattern in CUDA11_LIBRARIES:
        matches = sorted(glob.glob(os.path.join(root, pattern)))
        if not matches:
            raise SetupError(f"the CUDA 11 library {os.path.basename(pattern)} is missing")
        paths.append(matches[-1])
    return paths


def preload(folder=None):
    """Load the CUDA 11 libraries into this process (RTLD_GLOBAL, dependency order).

    Returns the paths loaded. After this, ``import mxnet`` (the CUDA build)
    finds every CUDA library it needs by soname, without LD_LIBRARY_PATH.
    """
    loaded = []
    for path in preload_order(cuda11_library_paths(folder)):
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as error:
            raise SetupError(f"{os.path.basename(path)} could not be loaded ({error})") from None
        loaded.append(path)
    return loaded


# --- the two builds -----------------------------------------------------------------------

# Run in a fresh Python: load the libraries, import the GPU build, and check a
# convolution (cuDNN) and a matrix product (cuBLAS) on the GPU against the CPU.
GPU_PROBE = r"""
import sys
from autograder.student import colab, compat
colab.preload(sys.argv[1])
compat.install()
import mxnet as mx
from mxnet import nd
assert mx.context.num_gpus() > 0, "MXNet sees no GPU"
x = nd.random.uniform(shape=(2, 3, 16, 16))
w = nd.random.uniform(shape=(4, 3, 3, 3))
cpu = nd.Convolution(x, w, no_bias=True, kernel=(3, 3), num_filter=4, pad=(1, 1))
gpu = nd.Convolution(x.as_in_context(mx.gpu()), w.as_in_context(mx.gpu()), no_bias=True,
                     kernel=(3, 3), num_filter=4, pad=(1, 1))
assert abs(cpu - gpu.as_in_context(mx.cpu())).max().asscalar() < 1e-3, "wrong GPU result"
m = nd.dot(x.reshape((2, -1)).as_in_context(mx.gpu()), x.reshape((2, -1)).T.as_in_context(mx.gpu()))
m.wait_to_read()
print("GPU OK")
"""


def install_cuda11_libraries(folder=None):
    """pip-install the nvidia-*-cu11 wheels into the private folder (once)."""
    folder = folder or cuda11_dir()
    stamp = os.path.join(folder, ".installed")
    wanted_text = "\n".join(CUDA11_PACKAGES)
    if os.path.exists(stamp) and open(stamp).read() == wanted_text:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    pip("--no-deps", "--target", folder, *CUDA11_PACKAGES)
    with open(stamp, "w") as f:
        f.write(wanted_text)
    return folder


def probe_gpu(folder=None, timeout=600):
    """Check the GPU build in a separate process; SetupError says why it cannot be used."""
    folder = folder or cuda11_dir()
    try:
        result = subprocess.run([sys.executable, "-c", GPU_PROBE, folder],
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SetupError("the GPU test did not finish") from None
    _log("$ GPU probe\n" + result.stdout + result.stderr)
    if result.returncode != 0 or "GPU OK" not in result.stdout:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else "no output"
        if "no kernel image" in result.stderr or "invalid device function" in result.stderr:
            reason = "MXNet has no GPU kernels for this GPU"
        reason = reason.split(". ")[0].rstrip(".")  # the reason must not break the one sentence
        raise SetupError(f"MXNet's GPU test failed: {reason[:160]}")


def install_gpu(gpu):
    """Install and check the CUDA build; raise SetupError if it cannot be used here."""
    name, capability = gpu
    if capability and capability[0] > MAX_COMPUTE_MAJOR:
        raise SetupError(f"MXNet 1.9.1 has no GPU kernels for the {name} "
                         f"(compute capability {capability[0]}.{capability[1]})")
    print("Installing MXNet's GPU build and its CUDA 11 libraries (about 2.5 GB, one to three minutes) ...",
          flush=True)
    folder = install_cuda11_libraries()
    if installed("mxnet") and not installed("mxnet-cu112"):
        pip_uninstall("mxnet")
    if installed("mxnet-cu112") != MXNET_VERSION:
        pip("--no-deps", MXNET_GPU)
    probe_gpu(folder)
    preload(folder)


def install_cpu():
    if installed("mxnet-cu112"):
        pip_uninstall("mxnet-cu112")
    if installed("mxnet") != MXNET_VERSION:
        pip("--no-deps", MXNET_CPU)


def _fail(sentence):
    """Stop the setup cell with one sentence and no traceback."""
    raise SetupFailed(sentence)


# --- the setup cell ---------------------------------------------------------------------------

def setup(device=None, started=None):
    """Install MXNet 1.9.1 (GPU build where it works) and d2l 1.0.3, then make them importable.

    ``device``: ``"auto"`` (default: the GPU build on a GPU runtime), ``"gpu"``
    or ``"cpu"``; the environment variable RESNET_COURSE_DEVICE sets the default.
    ``started``: when the setup cell started (``time.time()``), so that the
    time reported includes its install of this package. Safe to run again: a
    second call only reports.
    """
    if _state["done"]:
        print(f"Setup already done in this session (MXNet {MXNET_VERSION}, {_state['device']}).")
        return _state["device"]
    device = (device or os.environ.get(DEVICE_ENV) or "auto").lower()
    if device not in ("auto", "cpu", "gpu"):
        _fail(f"Setup: device must be 'auto', 'cpu' or 'gpu', not {device!r}.")
    started = started or time.time()
    gpu = gpu_info() if device != "cpu" else None
    if device == "gpu" and gpu is None:
        gpu = ("GPU", None)  # try anyway; the probe will tell
    used = "CPU"
    if gpu is not None:
        try:
            install_gpu(gpu)
            used = f"GPU: {gpu[0]}"
        except SetupError as error:
            print(f"The GPU cannot be used ({error}), so MXNet's CPU build is installed instead: "
                  "everything works, only training is slower.", flush=True)
        except Exception as error:  # anything unforeseen: still fall back, still one sentence
            _log(f"unexpected error in the GPU setup: {error!r}")
            print(f"The GPU cannot be used ({type(error).__name__} during its setup), so MXNet's CPU "
                  "build is installed instead: everything works, only training is slower.", flush=True)
    try:
        if used == "CPU":
            print(f"Installing MXNet {MXNET_VERSION} (CPU build) and d2l {D2L_VERSION} ...", flush=True)
            install_cpu()
        if installed("d2l") != D2L_VERSION:
            pip("--no-deps", D2L)
    except SetupError as error:
        _fail(f"Setup failed: {error}.")
    compat.install()
    importlib.invalidate_caches()
    try:
        import mxnet  # noqa: F401  (import now, so a problem shows here and not in a later cell)
        from d2l import mxnet as d2l  # noqa: F401
    except Exception as error:
        _log(f"import failed: {error!r}")
        _fail(f"Setup failed: MXNet could not be imported ({type(error).__name__}: "
              f"{str(error).splitlines()[0][:150] if str(error) else ''}).")
    import numpy
    _state.update(done=True, device=used)
    hint = (" For faster training choose Runtime > Change runtime type > T4 GPU, then run the notebook again."
            if on_colab() and device == "auto" and gpu is None else "")
    print(f"Setup done in {time.time() - started:.0f} s: MXNet {MXNET_VERSION} ({used}), d2l {D2L_VERSION}, "
          f"Python {sys.version_info.major}.{sys.version_info.minor}, NumPy {numpy.__version__}.{hint}")
    return used


def require_setup():
    """Stop a cell with one sentence where the setup cell has to run (again) first.

    On Colab a restarted runtime keeps what the setup cell installed but not
    what it did to the running Python: the NumPy 2 shims and, on a GPU, the
    CUDA 11 libraries it loaded. Importing MXNet would then fail with
    ``AttributeError: `np.PZERO` was removed`` (or a missing libcudart), so
    the notebooks' import cell calls this first. Elsewhere it does nothing.
    """
    if wanted() and not _state["done"]:
        raise SetupFailed("This Python has not run the setup cell (the runtime was restarted, or the setup did "
                          "not finish): run the setup cell again, the first code cell, then this cell.")


# --- on your own Linux machine with an NVIDIA GPU -------------------------------------------------------

def library_path(folder=None):
    """The LD_LIBRARY_PATH value that makes the CUDA 11 libraries of ``folder`` visible."""
    return os.pathsep.join(dict.fromkeys(os.path.dirname(p) for p in cuda11_library_paths(folder)))


def main(argv=None):
    """``python -m autograder.student.colab {gpu,ld-library-path}``: the GPU build on a local Linux machine."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m autograder.student.colab", description=main.__doc__)
    parser.add_argument("command", choices=["gpu", "ld-library-path"],
                        help="gpu: install the CUDA 11 libraries (into RESNET_CUDA11_DIR, default "
                             "~/.cache/resnet-course/cuda11) and mxnet-cu112 into this Python, test them, and "
                             "print the LD_LIBRARY_PATH to start Jupyter with; ld-library-path: print it only")
    args = parser.parse_args(argv)
    try:
        if args.command == "gpu":
            gpu = gpu_info()
            if gpu is None:
                print("No NVIDIA GPU found (nvidia-smi does not list one): keep the CPU build.", file=sys.stderr)
                return 1
            name, capability = gpu
            if capability and capability[0] > MAX_COMPUTE_MAJOR:
                print(f"MXNet 1.9.1 has no GPU kernels for the {name}: keep the CPU build.", file=sys.stderr)
                return 1
            print(f"Installing the CUDA 11 libraries into {cuda11_dir()} (about 2.5 GB) ...", flush=True)
            folder = install_cuda11_libraries()
            if installed("mxnet"):
                pip_uninstall("mxnet")
            pip("--no-deps", MXNET_GPU)
            probe_gpu(folder)
            print(f"MXNet's GPU build works on the {name}. Start Jupyter with:\n"
                  f"  export LD_LIBRARY_PATH={library_path(folder)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n"
                  f"To go back to the CPU build: pip uninstall -y mxnet-cu112 && pip install {MXNET_CPU}")
        else:
            try:
                print(library_path())
            except SetupError as error:
                print(f"No CUDA 11 libraries to point LD_LIBRARY_PATH at ({error} in {cuda11_dir()}): run "
                      "`python -m autograder.student.colab gpu` first.", file=sys.stderr)
                return 1
    except SetupError as error:  # to stderr: stdout may be going into LD_LIBRARY_PATH=$(...)
        print(f"The GPU build cannot be used here: {error} (details in {log_path()}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
