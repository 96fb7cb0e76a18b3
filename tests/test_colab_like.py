"""The release notebooks run on today's Colab as released; the Colab helpers do what they say.

The main test builds a Colab-like Python (``scripts/colab_like_env.sh``: Python
3.12, NumPy 2, SciPy, pandas, matplotlib, IPython 9; cached in
``.colab-venv/``) and runs every release notebook in a kernel of it, with the
reference answers filled in, through the notebooks' own setup cell. The
notebooks and the package come from the published student edition
(``python -m autograder publish students``), as students get them:
``RESNET_COURSE_SETUP=1`` makes the cell act as on Colab, and
``RESNET_COURSE_PACKAGE`` makes it pip-install the runtime from the edition's
folder instead of GitHub's archive of the edition's repository. A typical
mistake then makes a visible test fail with its message. One notebook runs
with a fake ``nvidia-smi`` reporting an H100, a GPU MXNet has no kernels for,
so the setup must fall back to the CPU build in one sentence. mxnet and d2l are removed from that Python first,
so the setup cell really installs them (``--no-deps``) and loads the NumPy 2
shims, as on a fresh Colab runtime. The training cells run briefly on tiny
generated data.

The GPU path is checked as far as a machine without a GPU allows: the library
ordering and ELF reading, the fallback sentence for every kind of failure, and
(when ``RESNET_TEST_GPU_LIBS=1``, as it downloads about 2.4 GB) that pip's
CUDA 11 libraries install into a private folder and load, and that MXNet's
CUDA build then resolves every symbol it needs and imports.

Without Python 3.12 the Colab-like tests are skipped, except in CI (``CI`` set)
where they fail.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder import course
from autograder.assign import boilerplate, samples
from autograder.student import colab, compat, data, selfcheck
from tiny_training import with_tiny_training

ROOT = course.ROOT
# The package the setup cell installs, and the release notebooks to run: the
# checkout itself unless overridden (to try an uncommitted build elsewhere).
PACKAGE = Path(os.environ.get("COLAB_LIKE_PACKAGE", ROOT))
RELEASE = Path(os.environ.get("COLAB_LIKE_RELEASE", PACKAGE / "release"))
COURSE_DISTRIBUTIONS = ["mxnet", "mxnet-cu112", "d2l", "resnet-course-autograder", "resnet-course-runtime"]


# --- the Colab-like Python -------------------------------------------------------------------

@pytest.fixture(scope="session")
def colab_python():
    """Path of the Colab-like Python 3.12 (made once, then cached in .colab-venv/ or $COLAB_LIKE_VENV)."""
    script = ROOT / "scripts" / "colab_like_env.sh"
    venv = os.environ.get("COLAB_LIKE_VENV", str(ROOT / ".colab-venv"))
    result = subprocess.run(["bash", str(script), venv], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        message = "could not make the Colab-like Python 3.12 environment:\n" + result.stderr[-3000:]
        if os.environ.get("CI") or "Python 3.12 is needed" not in result.stderr:
            pytest.fail(message)
        pytest.skip(message)
    return result.stdout.strip().splitlines()[-1]


def run_in(python, code, *args, env=None, timeout=600):
    return subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**clean_env(), **(env or {})}, cwd="/")


def clean_env():
    """The environment without this venv's traces (PYTHONPATH, VIRTUAL_ENV, the venv's bin)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def test_colab_like_python_is_like_colab(colab_python):
    result = run_in(colab_python, "import json, sys, numpy, scipy, pandas, matplotlib, IPython, importlib.util as u\n"
                                  "print(json.dumps([sys.version_info[:2], numpy.__version__, IPython.__version__,\n"
                                  "                  [m for m in ('mxnet', 'd2l', 'nbgrader') if u.find_spec(m)]]))")
    assert result.returncode == 0, result.stderr
    python, numpy_version, ipython_version, _ = json.loads(result.stdout)
    assert python == [3, 12]
    assert numpy_version.startswith("2."), "Colab has NumPy 2"
    assert int(ipython_version.split(".")[0]) >= 9


# --- compat: the removed NumPy names MXNet uses, found by scanning its source -------------------------

def numpy_attribute_chains(package_dir):
    """Every ``numpy.<a>[.<b>...]`` that the code of a package uses.

    Code only (the AST, not docstrings): attributes of any name a module binds
    to ``import numpy [as x]``, names imported ``from numpy[.sub] import``, and
    the operator names MXNet's array-function protocol looks up on NumPy with
    getattr (its ``_NUMPY_ARRAY_*_LIST`` constants).
    """
    chains = set()
    for path in Path(package_dir).rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update(a.asname or "numpy" for a in node.names if a.name == "numpy")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    (node.module == "numpy" or node.module.startswith("numpy.")):
                prefix = node.module.split(".")[1:]
                chains.update(tuple(prefix + [a.name]) for a in node.names if a.name != "*")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                parts, value = [], node
                while isinstance(value, ast.Attribute):
                    parts.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in aliases:
                    chains.add(tuple(reversed(parts)))
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and any(
                    isinstance(t, ast.Name) and t.id.startswith("_NUMPY_ARRAY_") for t in node.targets):
                chains.update(tuple(e.value.split(".")) for e in node.value.elts
                              if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return chains


def resolves(module, chain):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in chain:
            try:
                module = getattr(module, part)
            except Exception:
                return False
    return True


RESOLVE_IN_NUMPY2 = r"""
import json, sys, warnings
import numpy
def resolves(chain):
    obj = numpy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in chain:
            try:
                obj = getattr(obj, part)
            except Exception:
                return False
    return True
chains = json.loads(sys.stdin.read())
missing = [c for c in chains if not resolves(c)]
sys.path.insert(0, sys.argv[1])
from autograder.student import compat
added = compat.install()
still = [c for c in missing if not resolves(c)]
print(json.dumps({"numpy": numpy.__version__, "missing": missing, "still": still, "added": added}))
"""


@pytest.fixture(scope="module")
def used_numpy_names():
    """The numpy attribute chains MXNet 1.9.1 and d2l 1.0.3 use that exist in NumPy 1.23 (the pinned one)."""
    import d2l
    import mxnet
    import numpy
    chains = set()
    for package in (mxnet, d2l):
        chains |= numpy_attribute_chains(Path(package.__file__).parent)
    return sorted(c for c in chains if resolves(numpy, c))


def test_compat_covers_every_numpy_name_mxnet_uses_that_numpy_2_removed(colab_python, used_numpy_names):
    result = subprocess.run([colab_python, "-c", RESOLVE_IN_NUMPY2, str(ROOT)], input=json.dumps(used_numpy_names),
                            capture_output=True, text=True, env=clean_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    missing = {".".join(c) for c in found["missing"]}
    assert {"PZERO", "sometrue", "alltrue", "round_", "mirr"} <= missing, "the scan should find the known ones"
    assert not found["still"], f"compat.py does not restore {found['still']} (NumPy {found['numpy']})"
    # Only what is needed is added: no name that MXNet and d2l do not use.
    assert {name.split(".")[1] for name in found["added"] if name.startswith("numpy.")} <= \
        {c.split(".")[0] for c in missing}


def test_compat_changes_nothing_on_the_pinned_stack():
    import numpy
    before = dict(vars(numpy))
    modules = set(sys.modules)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a deprecation warning
        assert compat.install() == []
    assert dict(vars(numpy)) == before
    assert "distutils" not in set(sys.modules) - modules


def test_compat_distutils_stand_in_where_python_312_has_none(colab_python):
    # Hide setuptools' distutils, as in a Python 3.12 without setuptools.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from autograder.student import compat\n"
            "added = compat.install()\n"
            "from distutils.version import LooseVersion, StrictVersion\n"
            "assert LooseVersion('2.0.2') >= LooseVersion('1.17') > LooseVersion('1.9.1')\n"
            "assert StrictVersion('1.10.0') > StrictVersion('1.6.0') > StrictVersion('1.6.0b1')\n"
            "print(added)\n")
    result = run_in(colab_python, code, str(ROOT), env={"SETUPTOOLS_USE_DISTUTILS": "stdlib"})
    assert result.returncode == 0, result.stderr
    assert "distutils" in result.stdout


# --- boilerplate ---------------------------------------------------------------------------------------

def test_boilerplate_is_idempotent_and_locked(tmp_path):
    nb = nbformat.read(course.source_notebook("resnet18"), as_version=4)
    original = [c.id for c in nb.cells if c.id not in boilerplate.CELL_IDS]
    once = boilerplate.apply(nbformat.from_dict(nb), "resnet18")
    twice = boilerplate.apply(nbformat.from_dict(once), "resnet18")
    assert once == twice
    ids = [c.id for c in twice.cells]
    assert ids[:2] == ["colab-badge", "colab-setup"] and ids[-3:] == ["sources", "submit-text", "self-check"]
    assert [i for i in ids if i not in boilerplate.CELL_IDS] == original
    for cell in twice.cells[:2] + twice.cells[-3:]:
        meta = cell.metadata["nbgrader"]
        assert meta == {"grade": False, "grade_id": cell.id, "locked": True, "schema_version": 3,
                        "solution": False, "task": False}
        assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
    assert "release/resnet18/resnet18.ipynb" in twice.cells[0].source
    nbformat.validate(twice)
    study = boilerplate.apply(nbformat.from_dict(twice), "resnet18", variant="self-study")
    assert [c.id for c in study.cells][:2] == ["colab-badge", "colab-setup"]
    assert not {"submit-text", "self-check"} & {c.id for c in study.cells}
    assert "notebooks/resnet18.ipynb" in study.cells[0].source
    assert all("nbgrader" not in c.metadata and c.metadata["editable"] is False for c in study.cells[:2])
    # As the build makes it: self_study() strips nbgrader metadata, then the self-study variant is applied.
    from autograder.assign import build
    with_release_cells = tmp_path / "resnet18.ipynb"
    nbformat.write(twice, with_release_cells)
    derived = boilerplate.apply(build.self_study(with_release_cells), "resnet18", variant="self-study")
    assert not any("nbgrader" in c.metadata for c in derived.cells)
    assert [c.id for c in derived.cells][:2] == ["colab-badge", "colab-setup"]
    assert [c.id for c in derived.cells][-1] == "sources"  # the book ends with its sources, once
    assert [c.id for c in derived.cells].count("sources") == 1


def test_boilerplate_names_the_unpublished_repository_once():
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", boilerplate.UNPUBLISHED.repository)
    text = Path(boilerplate.__file__).read_text()
    assert text.count(boilerplate.UNPUBLISHED.repository) == 1


def test_setup_cell_does_nothing_outside_colab(tmp_path):
    env = {k: v for k, v in clean_env().items() if k not in ("RESNET_COURSE_SETUP", "COLAB_RELEASE_TAG")}
    env["PATH"] = "/nonexistent"  # no pip, no nvidia-smi: nothing may be run
    result = subprocess.run([sys.executable, "-c", boilerplate.setup_source()], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


# --- selfcheck -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def release_with_boilerplate(tmp_path_factory):
    """{assignment: (release notebook, expected cells)}: the committed release when it has the
    boilerplate, else one generated here (source + boilerplate through nbgrader)."""
    result = {}
    work = None
    for assignment in course.assignments():
        committed = RELEASE / assignment / f"{assignment}.ipynb"
        nb = nbformat.read(committed, as_version=4)
        if not any(c.get("id") == boilerplate.SETUP_ID for c in nb.cells):
            if work is None:
                work = tmp_path_factory.mktemp("course")
                shutil.copytree(course.SOURCE, work / "source")
                shutil.copy(ROOT / "nbgrader_config.py", work)
            path = work / "source" / assignment / f"{assignment}.ipynb"
            source = boilerplate.apply(nbformat.read(path, as_version=4), assignment)
            nbformat.write(source, path)
            from autograder.grade.nbgrader_cli import nbgrader
            nbgrader(work, "generate_assignment", assignment, "--force", "--no-db")
            nb = nbformat.read(work / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        result[assignment] = (nb, selfcheck.gradable_cells(nb))
    return result


def _problems(nb, expected):
    return selfcheck.compare(json.loads(nbformat.writes(nb)), expected)


def test_selfcheck_passes_the_release_and_an_answered_notebook(release_with_boilerplate):
    for assignment, (nb, expected) in release_with_boilerplate.items():
        problems, notes = _problems(nb, expected)
        assert problems == []
        assert any("not answered yet" in n for n in notes)
        answered = samples.fill(nb, samples.read_answers(ROOT / "samples" / assignment / "correct_reference.py"))
        assert _problems(answered, expected) == ([], [])
        # As Colab saves it: nbformat 4.0 without cell ids, sources as lists of lines, Colab's own metadata.
        colab_style = json.loads(nbformat.writes(answered))
        colab_style["nbformat_minor"] = 0
        for cell in colab_style["cells"]:
            cell.pop("id", None)
            if isinstance(cell["source"], str):
                cell["source"] = cell["source"].splitlines(keepends=True)
            cell["metadata"]["id"] = "x" + str(abs(hash(str(cell["source"]))))[:10]
        colab_style["metadata"]["colab"] = {"provenance": []}
        assert selfcheck.compare(colab_style, expected) == ([], [])


@pytest.mark.filterwarnings("ignore:Non-unique cell id")  # the duplicate is the point
def test_selfcheck_catches_stripped_deleted_duplicated_and_foreign_cells(release_with_boilerplate):
    nb, expected = release_with_boilerplate["resnet18"]
    nb = samples.fill(nb, samples.read_answers(ROOT / "samples" / "resnet18" / "correct_reference.py"))
    index = {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)}

    stripped = nbformat.from_dict(nb)
    del stripped.cells[index["resnet18"]].metadata["nbgrader"]        # an answer: matched by what it defines
    stripped.cells[index["stem_visible"]].metadata = {}              # a visible test: matched by its source
    problems, _ = _problems(stripped, expected)
    assert len(problems) == 1  # said once, naming both cells in notebook order
    assert problems[0].startswith("2 graded or answer cells have lost their grading metadata")
    assert f"cell {index['stem_visible'] + 1} ('stem_visible'), cell {index['resnet18'] + 1} ('resnet18')" \
        in problems[0] and "do this: take a fresh copy" in problems[0]

    deleted = nbformat.from_dict(nb)
    deleted.cells = [c for c in deleted.cells if c.metadata["nbgrader"]["grade_id"] not in
                     ("resnet18_hidden", "code-01", "text-05")]
    problems, notes = _problems(deleted, expected)
    assert len(problems) == 1
    assert "graded test cell 'resnet18_hidden' (12 points)" in problems[0] and "missing" in problems[0]
    assert not any("code-01" in text or "text-05" in text for text in notes)  # the grader uses the release's

    duplicated = nbformat.from_dict(nb)
    duplicated.cells.insert(index["stem"] + 1, nbformat.from_dict(duplicated.cells[index["stem"]]))
    problems, _ = _problems(duplicated, expected)
    assert len(problems) == 1 and "'stem'" in problems[0] and "duplicated" in problems[0]
    assert f"cells {index['stem'] + 1}, {index['stem'] + 2}" in problems[0]

    changed = nbformat.from_dict(nb)
    changed.cells[index["stem_visible"]].metadata["nbgrader"]["points"] = 200
    foreign = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "q7", "solution": True}})
    changed.cells.append(foreign)
    problems, _ = _problems(changed, expected)
    assert len(problems) == 2 and "points" in problems[0] and "'q7'" in problems[1]

    edited = nbformat.from_dict(nb)
    edited.cells[index["stem_visible"]].source = "pass"
    assert _problems(edited, expected)[0] == []
    assert "grading restores the original" in _problems(edited, expected)[1][0]


def test_selfcheck_report_on_a_file(release_with_boilerplate, tmp_path, capsys, monkeypatch):
    nb, expected = release_with_boilerplate["resnet18"]
    monkeypatch.setattr(selfcheck, "load_expected", lambda assignment: expected)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the kernel inherits it: it would import this repository
    monkeypatch.chdir(tmp_path)
    stripped = nbformat.from_dict(nb)
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)  # what a metadata-stripping editor does
    nbformat.write(stripped, tmp_path / "resnet18.ipynb")
    assert selfcheck.check_notebook("resnet18") is None  # the cell shows only the report
    out = capsys.readouterr().out
    assert selfcheck.is_gradable("resnet18", out=lambda text: None) is False
    # Said once, and nothing about text cells, the setup cell or the check itself.
    assert "1 problem(s) to fix" in out and out.count("lost its grading metadata") == 1, out
    assert "  1. This notebook has lost its grading metadata" in out and "it happens when" in out
    assert "do this: take a fresh copy" in out and "A fresh copy: open https://colab.research.google.com/" in out
    assert len(out.splitlines()) == 3, out
    nbformat.write(nb, tmp_path / "resnet18.ipynb")
    assert selfcheck.is_gradable("resnet18") is True
    assert ": gradable." in capsys.readouterr().out
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert selfcheck.is_gradable("resnet18") is True and capsys.readouterr().out == ""


def _without_metadata(nb, keep=()):
    """``nb`` as a metadata-stripping editor saves it: no nbgrader metadata, except on the cells in ``keep``."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") not in keep:
            cell.metadata.pop("nbgrader", None)
    return nb


def _drop(nb, *grade_ids):
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return nb


def test_selfcheck_stripped_notebook_lists_only_graded_cells_really_missing(release_with_boilerplate):
    nb, expected = release_with_boilerplate["resnet18"]
    nb = samples.fill(nb, samples.read_answers(ROOT / "samples" / "resnet18" / "correct_reference.py"))
    # Stripped, and then an answer, a hidden test, a text cell, the import cell and the self-check deleted.
    damaged = _without_metadata(_drop(nb, "stem", "stem_hidden", "text-05", "code-01", "self-check"))
    problems, notes = _problems(damaged, expected)
    assert len(problems) == 3, problems
    assert problems[0].startswith("This notebook has lost its grading metadata") and "do this:" in problems[0]
    assert problems[1].startswith("Your answer cell 'stem'") and "is missing" in problems[1]
    assert problems[2].startswith("The graded test cell 'stem_hidden' (8 points)") and "is missing" in problems[2]
    assert notes == []
    assert not any(word in text for text in problems for word in ("text cell", "code-01", "self-check"))


@pytest.mark.filterwarnings("ignore:Non-unique cell id")
def test_selfcheck_partly_stripped_notebook_with_a_duplicated_answer(release_with_boilerplate):
    nb, expected = release_with_boilerplate["resnet18"]
    nb = samples.fill(nb, samples.read_answers(ROOT / "samples" / "resnet18" / "correct_reference.py"))
    index = {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)}
    damaged = _without_metadata(nb, keep={e["grade_id"] for e in expected} - {"residual"})
    damaged.cells.insert(index["stem"] + 1, nbformat.from_dict(damaged.cells[index["stem"]]))
    problems, _ = _problems(damaged, expected)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"1 graded or answer cell has lost its grading metadata, the hidden marks by "
                                  f"which nbgrader finds it: cell {index['residual'] + 1} ('residual')")
    assert "'stem'" in problems[1] and "duplicated" in problems[1]


def test_selfcheck_treats_a_deleted_and_a_stripped_text_cell_alike(release_with_boilerplate):
    for assignment, (nb, expected) in release_with_boilerplate.items():
        text = [e["grade_id"] for e in expected if e["cell_type"] == "markdown"]
        locked_code = [e["grade_id"] for e in expected if e["kind"] == "locked" and e["cell_type"] == "code"]
        intact = _problems(nb, expected)
        for grade_id in text[:3] + locked_code[:1] + ["self-check"]:
            deleted = _problems(_drop(nb, grade_id), expected)
            stripped = _problems(_without_metadata(nb, keep={e["grade_id"] for e in expected} - {grade_id}),
                                 expected)
            assert deleted == stripped == intact, (assignment, grade_id)


def test_committed_gradable_cells_match_the_release():
    for assignment in course.assignments():
        shipped = PACKAGE / "autograder" / "student" / "gradable_cells" / f"{assignment}.json"
        assert shipped.exists(), f"{shipped} is missing: run `python -m autograder build`"
        release = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
        assert json.loads(shipped.read_text())["cells"] == selfcheck.gradable_cells(release), \
            f"{shipped} is stale: run `python -m autograder build`"


# --- GPU path, without a GPU ------------------------------------------------------------------------------

def test_preload_order_follows_needed_entries():
    needed = {
        "/x/libcudnn.so.8": [], "/x/libcudnn_cnn_infer.so.8": ["libcudnn_ops_infer.so.8", "libz.so.1"],
        "/x/libcudnn_ops_infer.so.8": ["libc.so.6"], "/x/libcusolver.so.11": ["libcublas.so.11", "libcublasLt.so.11"],
        "/x/libcublas.so.11": ["libcublasLt.so.11"], "/x/libcublasLt.so.11": [],
    }
    order = [Path(p).name for p in colab.preload_order(list(needed), needed.__getitem__)]
    assert order == ["libcudnn.so.8", "libcudnn_ops_infer.so.8", "libcudnn_cnn_infer.so.8",
                     "libcublasLt.so.11", "libcublas.so.11", "libcusolver.so.11"]
    with pytest.raises(ValueError, match="circular"):
        colab.preload_order(["/a/liba.so", "/a/libb.so"], {"/a/liba.so": ["libb.so"], "/a/libb.so": ["liba.so"]}.get)


def test_elf_needed_reads_libmxnet():
    import mxnet
    needed = colab.elf_needed(Path(mxnet.__file__).parent / "libmxnet.so")
    assert "libopenblas.so.0" in needed and "libc.so.6" in needed
    if shutil.which("readelf"):
        out = subprocess.run(["readelf", "-d", str(Path(mxnet.__file__).parent / "libmxnet.so")],
                             capture_output=True, text=True).stdout
        assert needed == re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)


def test_every_cuda_library_mxnet_cu112_needs_has_a_wheel():
    """libmxnet.so of mxnet-cu112 1.9.1 needs (readelf -d) these CUDA libraries; each comes from a listed wheel."""
    mxnet_cu112_needs = ["libcudnn.so.8", "libnccl.so.2", "libcudart.so.11.0", "libcufft.so.10", "libcublas.so.11",
                         "libcusolver.so.11", "libcurand.so.10", "libnvrtc.so.11.2", "libnvToolsExt.so.1"]
    provided = {Path(pattern).name for pattern in colab.CUDA11_LIBRARIES}
    assert set(mxnet_cu112_needs) <= provided
    packages = {p.split("==")[0] for p in colab.CUDA11_PACKAGES}
    folders = {pattern.split("/")[0] for pattern in colab.CUDA11_LIBRARIES}
    wheel_folder = {"nvidia-cuda-runtime-cu11": "cuda_runtime", "nvidia-cublas-cu11": "cublas",
                    "nvidia-cudnn-cu11": "cudnn", "nvidia-cufft-cu11": "cufft", "nvidia-curand-cu11": "curand",
                    "nvidia-cusolver-cu11": "cusolver", "nvidia-cuda-nvrtc-cu11": "cuda_nvrtc",
                    "nvidia-nvtx-cu11": "nvtx", "nvidia-nccl-cu11": "nccl"}
    assert set(wheel_folder) == packages and set(wheel_folder.values()) == folders
    assert not any("nvblas" in p for p in colab.CUDA11_LIBRARIES), "libnvblas would hijack NumPy's BLAS"


@pytest.fixture
def fake_setup(monkeypatch, tmp_path):
    """colab.setup() with every installing step replaced; returns the list of steps taken."""
    steps = []
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_DEVICE", raising=False)
    monkeypatch.setitem(colab._state, "done", False)
    monkeypatch.setattr(colab, "gpu_info", lambda: ("Tesla T4", (7, 5)))
    monkeypatch.setattr(colab, "install_cuda11_libraries", lambda folder=None: steps.append("cuda11") or "/x")
    monkeypatch.setattr(colab, "installed", lambda name: {"d2l": colab.D2L_VERSION}.get(name))
    monkeypatch.setattr(colab, "pip", lambda *args, **kw: steps.append("pip " + " ".join(args)))
    monkeypatch.setattr(colab, "pip_uninstall", lambda *names: steps.append("uninstall " + " ".join(names)))
    monkeypatch.setattr(colab, "probe_gpu", lambda folder=None: steps.append("probe"))
    monkeypatch.setattr(colab, "preload", lambda folder=None: steps.append("preload"))
    return steps


def _raise(error):
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.parametrize("step, error, reason", [
    ("install_cuda11_libraries", colab.SetupError("pip could not install nvidia-cudnn-cu11==8.9.6.50"),
     "pip could not install nvidia-cudnn-cu11"),
    ("probe_gpu", colab.SetupError("MXNet's GPU test failed: MXNet has no GPU kernels for this GPU"),
     "no GPU kernels"),
    ("preload", colab.SetupError("libcudnn.so.8 could not be loaded (bad ELF)"), "libcudnn.so.8"),
    ("probe_gpu", KeyError("surprise"), "KeyError during its setup"),
])
def test_gpu_failure_falls_back_to_cpu_in_one_sentence(fake_setup, monkeypatch, capsys, step, error, reason):
    monkeypatch.setattr(colab, step, _raise(error))
    assert colab.setup() == "CPU"
    out, err = capsys.readouterr()
    fallback = [line for line in out.splitlines() if "GPU cannot be used" in line]
    assert len(fallback) == 1 and reason in fallback[0]
    assert fallback[0].count(". ") == 0 and fallback[0].endswith("slower.")  # one sentence
    assert "Traceback" not in out + err
    assert f"pip --no-deps {colab.MXNET_CPU}" in fake_setup
    assert out.splitlines()[-1].startswith("Setup done")


def test_gpu_newer_than_mxnet_kernels_is_not_even_downloaded(fake_setup, monkeypatch, capsys):
    monkeypatch.setattr(colab, "gpu_info", lambda: ("NVIDIA H100 80GB HBM3", (9, 0)))
    assert colab.setup() == "CPU"
    assert "cuda11" not in fake_setup
    assert "no GPU kernels for the NVIDIA H100 80GB HBM3 (compute capability 9.0)" in capsys.readouterr().out


def test_gpu_path_order(fake_setup, capsys):
    assert colab.setup() == "GPU: Tesla T4"
    assert fake_setup == ["cuda11", f"pip --no-deps {colab.MXNET_GPU}", "probe", "preload"]
    assert "GPU cannot be used" not in capsys.readouterr().out
    assert colab.setup() == "GPU: Tesla T4"  # a second run only reports
    assert "already done" in capsys.readouterr().out


def test_failed_install_stops_with_one_sentence(fake_setup, monkeypatch):
    monkeypatch.setattr(colab, "gpu_info", lambda: None)
    cause = "there is no internet connection (pip could not download mxnet==1.9.1)"
    monkeypatch.setattr(colab, "pip", _raise(colab.SetupError(cause)))
    with pytest.raises(colab.SetupFailed) as failed:
        colab.setup()
    assert failed.value._render_traceback_() == [f"Setup failed: {cause}."]  # all that IPython shows


def test_setup_time_includes_the_package_install(fake_setup, monkeypatch, capsys):
    monkeypatch.setattr(colab, "gpu_info", lambda: None)
    monkeypatch.setattr(colab, "installed", {"d2l": colab.D2L_VERSION, "mxnet": colab.MXNET_VERSION}.get)
    import time
    colab.setup(started=time.time() - 30)  # the setup cell started 30 s ago, with pip installing the package
    assert capsys.readouterr().out.splitlines()[-1].startswith("Setup done in 30 s: MXNet 1.9.1 (CPU)")


GPU_LIBS_CHECK = r"""
import ctypes, os, subprocess, sys
from autograder.student import colab, compat
folder, mxnet_target, stub = sys.argv[1:4]
colab.install_cuda11_libraries(folder)
loaded = colab.preload(folder)
names = {os.path.basename(p) for p in loaded}
libmxnet = os.path.join(mxnet_target, "mxnet", "libmxnet.so")
missing = [n for n in colab.elf_needed(libmxnet) if n not in names and n != "libcuda.so.1"
           and not n.startswith(("libc.", "libm.", "libdl.", "librt.", "libpthread.", "ld-linux", "libgcc_s.",
                                 "libstdc++.", "libgomp.", "libopenblas.", "libgfortran."))]
assert not missing, f"libmxnet.so needs {missing}, which nothing provides"
print("PRELOADED", len(loaded))
try:  # the real probe, on a machine without a GPU (and its driver): must fail, and say why in a few words
    colab.probe_gpu(folder)
except colab.SetupError as error:
    print("PROBE-FALLBACK", error)
if stub != "-":
    ctypes.CDLL(stub, mode=ctypes.RTLD_GLOBAL)  # stands in for the driver's libcuda.so.1
    compat.install()
    import mxnet as mx  # libmxnet.so is loaded with RTLD_NOW: every CUDA symbol must resolve
    features = mx.runtime.Features()
    assert features.is_enabled("CUDA") and features.is_enabled("CUDNN"), "not the CUDA build"
    x = mx.nd.ones((2, 3))
    print("IMPORTED", mx.__file__, float((x * 2).sum().asscalar()))
"""


@pytest.mark.skipif(not os.environ.get("RESNET_TEST_GPU_LIBS"),
                    reason="downloads about 2.4 GB of CUDA 11 wheels; set RESNET_TEST_GPU_LIBS=1 to run")
def test_cuda11_libraries_install_privately_and_load(colab_python, tmp_path):
    cache = Path(os.environ.get("RESNET_GPU_LIBS_CACHE", ROOT / ".colab-gpu-libs"))
    mxnet_target = cache / "mxnet-cu112"
    if not (mxnet_target / "mxnet" / "libmxnet.so").exists():
        subprocess.run([colab_python, "-m", "pip", "install", "-q", "--no-deps", "--target", str(mxnet_target),
                        colab.MXNET_GPU], check=True, env=clean_env(), timeout=1200)
    stub = "-"
    if shutil.which("gcc"):
        symbols = sorted(set(re.findall(r"\b(cu[A-Z]\w+)\b", subprocess.run(
            ["nm", "-D", "--undefined-only", str(mxnet_target / "mxnet" / "libmxnet.so")],
            capture_output=True, text=True).stdout)))
        (tmp_path / "cuda_stub.c").write_text(
            "".join(f"int {s}(void) {{ return 100; /* CUDA_ERROR_NO_DEVICE */ }}\n" for s in symbols))
        stub = str(tmp_path / "libcuda.so.1")
        subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", stub,
                        str(tmp_path / "cuda_stub.c")], check=True)
    env = {"HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(mxnet_target), str(PACKAGE)])}
    result = run_in(colab_python, GPU_LIBS_CHECK, str(cache / "cuda11"), str(mxnet_target), stub, env=env,
                    timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"PRELOADED {len(colab.CUDA11_LIBRARIES)}" in result.stdout
    assert "PROBE-FALLBACK MXNet's GPU test failed: " in result.stdout and "libcuda.so.1" in result.stdout
    if stub != "-":
        assert "IMPORTED" in result.stdout and result.stdout.rstrip().endswith(" 12.0")
    # Colab's own CUDA 12 libraries are untouched: nothing was installed into site-packages.
    listing = run_in(colab_python, "import importlib.metadata as m; print(sorted(d.metadata['Name'] for d in m.distributions()))")
    assert "nvidia-cudnn-cu11" not in listing.stdout and "mxnet-cu112" not in listing.stdout


# --- the release notebooks in the Colab-like Python ---------------------------------------------------------

def kernel_spec(folder, python, env):
    """A Jupyter kernel 'colab-like' running ``python`` with ``env``; returns the JUPYTER_PATH to use."""
    spec = Path(folder) / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like Python 3.12", "language": "python", "env": env}))
    return str(folder)


# Which notebook runs on a (fake) GPU runtime, and what nvidia-smi reports there.
FAKE_GPU = {"bottleneck": "NVIDIA H100 80GB HBM3, 9.0"}


# Per assignment: a typical mistake's sample, the answer cell it changes, and the visible check it fails.
MISTAKES = {"resnet18": ("downsample_every_stage", "resnet_block", "resnet_block_demo(resnet_block)"),
            "bottleneck": ("no_expansion", "bottleneck", "bottleneck_demo_shapes(Bottleneck)")}
MISTAKE_MARK = "visible test on the mistake:"


def runnable_release(edition, assignment):
    """The edition's notebook with the reference answers, its training switched on and cut to one tiny
    epoch, and at the end a typical mistake run through a visible check."""
    nb = nbformat.read(edition / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    nb = samples.fill(nb, samples.read_answers(ROOT / "samples" / assignment / "correct_reference.py"))
    sample, cell_id, call = MISTAKES[assignment]
    wrong = samples.read_answers(ROOT / "samples" / assignment / f"{sample}.py")[cell_id]
    nb.cells += [nbformat.v4.new_code_cell(wrong),
                 nbformat.v4.new_code_cell(f"try:\n    check.{call}\nexcept AssertionError as error:\n"
                                           f"    print({MISTAKE_MARK!r}, error)")]
    return with_tiny_training(nb)


def _printed(cell, name="stdout"):
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.output_type == "stream" and o.name == name)


@pytest.fixture(scope="session")
def student_edition(tmp_path_factory):
    """The published student edition, as in its repository's zip archive: the notebooks students open
    and the folder the setup cell installs the runtime from."""
    from autograder.assign.publish import publish
    folder = tmp_path_factory.mktemp("edition") / "resnet-course-students"
    publish("students", folder, "example-course/resnet-students")
    return folder


def runtime_env(home, package_source, path=None):
    """A Colab-like kernel's environment: the setup cell acts and installs the package from ``package_source``.

    pip keeps this machine's settings (index, cache, certificates) despite the separate HOME.
    """
    env = {"RESNET_COURSE_SETUP": "1", "RESNET_COURSE_PACKAGE": str(package_source), "HOME": str(home),
           "PATH": path or clean_env()["PATH"], "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_CERT",
                 "PIP_CACHE_DIR", "XDG_CACHE_HOME", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))  # share pip's cache despite HOME
    return env


def test_after_a_runtime_restart_the_import_cell_asks_for_the_setup_cell(colab_python, student_edition, tmp_path,
                                                                         monkeypatch):
    """A restarted runtime keeps the installed packages but not the NumPy 2 shims: one sentence, not PZERO."""
    release = nbformat.read(student_edition / "release" / "resnet18" / "resnet18.ipynb", as_version=4)
    setup = next(c.source for c in release.cells if c.get("id") == boilerplate.SETUP_ID)
    imports = next(c.source for c in release.cells if c.get("id") == "code-01")
    (tmp_path / "home").mkdir()
    env = {**runtime_env(tmp_path / "home", student_edition), "RESNET_COURSE_DEVICE": "cpu"}
    monkeypatch.setenv("JUPYTER_PATH", kernel_spec(tmp_path / "jupyter", colab_python, env))

    def kernel(*sources):
        """Run the cells in a fresh kernel (what a runtime restart gives), stopping at the first error."""
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
        try:
            NotebookClient(nb, timeout=900, kernel_name="colab-like",
                           resources={"metadata": {"path": str(tmp_path)}}).execute()
        except CellExecutionError:
            pass
        return [[o for o in c.outputs if o.output_type == "error"] for c in nb.cells]

    assert kernel(setup) == [[]]  # installs the course package, MXNet and d2l, as on Colab
    errors, = kernel("import mxnet")  # the failure this is about, without the import cell's guard
    assert "PZERO" in errors[0].evalue
    errors, = kernel(imports)
    assert [e.traceback for e in errors] == [[
        "This Python has not run the setup cell (the runtime was restarted, or the setup did not finish): "
        "run the setup cell again, the first code cell, then this cell."]]
    assert kernel(setup, imports) == [[], []]


@pytest.mark.parametrize("assignment", course.assignments())
def test_release_notebook_runs_in_colab_like_python(colab_python, student_edition, assignment, tmp_path,
                                                     monkeypatch):
    nb = runnable_release(student_edition, assignment)
    setup = [c for c in nb.cells if c.get("id") == boilerplate.SETUP_ID]
    assert setup, f"release/{assignment} has no Colab setup cell: run `python -m autograder build`"
    # A fresh runtime: none of the course's packages installed.
    subprocess.run([colab_python, "-m", "pip", "uninstall", "-y", "-q", *COURSE_DISTRIBUTIONS],
                   capture_output=True, env=clean_env())
    nbgrader_there = run_in(colab_python, "import importlib.util as u; print(u.find_spec('nbgrader') is None)")
    assert nbgrader_there.stdout.strip() == "True", "Colab has no nbgrader"

    data_dir = tmp_path / "data"
    data.write_fashion_mnist_idx(data_dir, n_train=80, n_test=32)
    data.write_cifar10_bin(data_dir, n_train=80, n_test=32)
    path = clean_env()["PATH"]
    fake_gpu = FAKE_GPU.get(assignment)
    if fake_gpu:  # a GPU runtime MXNet has no kernels for: the setup must fall back in one sentence
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "nvidia-smi").write_text(f"#!/bin/sh\necho '{fake_gpu}'\n")
        (tmp_path / "bin" / "nvidia-smi").chmod(0o755)
        path = f"{tmp_path / 'bin'}{os.pathsep}{path}"
    env = {**runtime_env(tmp_path / "home", student_edition, path), "RESNET_COURSE_DEVICE": "auto",
           "RESNET_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    monkeypatch.setenv("JUPYTER_PATH", kernel_spec(tmp_path / "jupyter", colab_python, env))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the kernel inherits it: it would import this repository
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "home").mkdir()
    # The self-check reads the saved notebook from the working folder (there is no Colab frontend here).
    nbformat.write(nb, workdir / f"{assignment}.ipynb")

    try:
        NotebookClient(nb, timeout=900, kernel_name="colab-like",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        nbformat.write(nb, tmp_path / f"{assignment}.executed.ipynb")  # to look at when it fails

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    setup_out = _printed(setup[0])
    assert "Setup done" in setup_out and "(CPU)" in setup_out and "Python 3.12, NumPy 2." in setup_out, setup_out
    assert "Traceback" not in setup_out and not _printed(setup[0], "stderr")
    fallback = [line for line in setup_out.splitlines() if "GPU cannot be used" in line]
    if fake_gpu:
        assert len(fallback) == 1 and "no GPU kernels for the NVIDIA H100" in fallback[0], setup_out
    else:
        assert not fallback, setup_out
    mistake = _printed(nb.cells[-1])
    assert mistake.startswith(MISTAKE_MARK) and "expected" in mistake, mistake
    visible = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
               and any(line.strip() and not line.lstrip().startswith("#") for line in c.source.splitlines())]
    assert visible
    for cell in visible:
        lines = _printed(cell).splitlines()
        assert lines and lines[-1].startswith("passed:"), (cell.metadata["nbgrader"]["grade_id"], _printed(cell))
        assert _printed(cell, "stderr") == "", "nbgrader scores a test cell that writes to stderr as failed"
    printed = "".join(_printed(c) for c in nb.cells if c.cell_type == "code")
    assert "train acc" in printed or "accuracy" in printed.lower()
    assert "training skipped" not in printed.lower()
    check = [c for c in nb.cells if c.get("id") == boilerplate.SELF_CHECK_ID][0]
    assert _printed(check).startswith("Self-check of the saved file") and ": gradable." in _printed(check)
    assert "Good to know" not in _printed(check) and not check.outputs[-1].get("data"), _printed(check)
