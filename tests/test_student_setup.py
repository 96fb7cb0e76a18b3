"""What a student sees when setting up goes wrong, and the local GPU helper's output.

The setup cell runs here as on Colab (``RESNET_COURSE_SETUP=1``) in a real
Jupyter kernel, with ``RESNET_COURSE_PACKAGE`` pointing at places pip cannot
install from: a port nobody listens on (what pip says without a network), a
web server that answers 404 (a wrong repository name), a missing folder and
a folder that is not a package. The cell must then show one sentence with the
cause and nothing else, and stop "Run all".
"""
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.assign import boilerplate
from autograder.student import colab


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_server(tmp_path):
    """A local web server with nothing to serve: every download is a 404, as for a repository that does not exist."""
    (tmp_path / "www").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_all(sources, tmp_path):
    """Run the cells as "Run all" does (stopping at the first error); return the executed notebook."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError:
        pass
    return nb


def shown(cell):
    """What the cell shows: its stream texts and error tracebacks, as (kind, text) pairs."""
    out = []
    for output in cell.outputs:
        if output.output_type == "stream":
            out.append((output.name, output.text))
        elif output.output_type == "error":
            out.append(("error", "\n".join(output.traceback)))
        else:
            out.append((output.output_type, str(output.get("data"))))
    return out


@pytest.mark.parametrize("package, cause", [
    ("http://127.0.0.1:{port}/resnet-course.zip", "there is no internet connection (pip could not download "
                                                  "the course package)"),
    ("{www}/resnet-course/no-such-repository/archive/refs/heads/main.zip", "the course package was not found at "
                                                                           "{www}/resnet-course/no-such-repository"),
    ("{tmp}/no-such-folder", "the course package was not found at {tmp}/no-such-folder"),
    ("{tmp}", "pip could not install the course package: ERROR: Directory '{tmp}' is not installable."),
])
def test_failed_setup_cell_shows_one_sentence_and_stops_run_all(tmp_path, web_server, monkeypatch, package, cause):
    names = {"port": free_port(), "www": web_server, "tmp": tmp_path / "empty"}
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("RESNET_COURSE_SETUP", "1")
    monkeypatch.setenv("RESNET_COURSE_PACKAGE", package.format(**names))
    nb = run_all([boilerplate.setup_source(), "print('the next cell ran')"], tmp_path)
    setup, after = nb.cells
    assert [kind for kind, _ in shown(setup)] == ["error"], shown(setup)  # no stderr warning, no stdout
    sentence = shown(setup)[0][1]
    assert sentence.startswith("Setup failed: " + cause.format(**names)), sentence
    assert "\n" not in sentence and sentence.endswith(".")
    assert "Traceback" not in sentence and "SystemExit" not in sentence and "%tb" not in sentence
    assert after.outputs == [] and after.execution_count is None  # "Run all" stopped at the setup cell


def test_pip_failure_without_network_says_so(tmp_path, monkeypatch):
    """colab.pip, which installs MXNet and d2l, names the cause too (a package index nobody answers for)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(colab.SetupError) as error:
        colab.pip("--no-deps", "resnet-course-nothing==1.0")
    assert str(error.value) == "there is no internet connection (pip could not download resnet-course-nothing==1.0)"
    assert "resnet-course-nothing" in (tmp_path / ".cache" / "resnet-course" / "setup.log").read_text()


def test_pip_failure_keeps_pips_last_lines():
    output = ("Looking in indexes: https://pypi.org/simple\n"
              "ERROR: Could not find a version that satisfies the requirement mxnet==1.9.1 (from versions: none)\n"
              "ERROR: No matching distribution found for mxnet==1.9.1\n")
    assert colab.pip_failure(output, "mxnet==1.9.1") == (
        "pip could not install mxnet==1.9.1: ERROR: Could not find a version that satisfies the requirement "
        "mxnet==1.9.1 (from versions: none) ERROR: No matching distribution found for mxnet==1.9.1")


def test_setup_failed_is_shown_as_its_sentence_alone_by_ipython(tmp_path):
    nb = run_all(["from autograder.student import colab\n"
                  "raise colab.SetupFailed('Setup failed: there is no internet connection.')"], tmp_path)
    assert shown(nb.cells[0]) == [("error", "Setup failed: there is no internet connection.")]


def test_require_setup_asks_for_the_setup_cell_only_where_it_is_needed(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("RESNET_COURSE_SETUP", raising=False)
    monkeypatch.setitem(colab._state, "done", False)
    colab.require_setup()  # local Jupyter, nbgrader: nothing to do
    monkeypatch.setenv("RESNET_COURSE_SETUP", "1")
    with pytest.raises(colab.SetupFailed, match="run the setup cell again"):
        colab.require_setup()
    monkeypatch.setitem(colab._state, "done", True)
    colab.require_setup()


# --- python -m autograder.student.colab ld-library-path -------------------------------------------------

DOCUMENTED_EXPORT = ('cuda11=$(python -m autograder.student.colab ld-library-path) && '
                     'export LD_LIBRARY_PATH=$cuda11${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}')


def run_documented_export(cuda_dir):
    """The guide's line in bash; returns (LD_LIBRARY_PATH afterwards, what the terminal showed)."""
    env = {**os.environ, "RESNET_CUDA11_DIR": str(cuda_dir), "LD_LIBRARY_PATH": "/before",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", DOCUMENTED_EXPORT + '\necho "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"'],
                            capture_output=True, text=True, env=env, timeout=120)
    return result.stdout.strip().splitlines()[-1].split("=", 1)[1], result.stderr


def test_ld_library_path_error_goes_to_stderr_with_a_non_zero_exit(tmp_path):
    result = subprocess.run([sys.executable, "-m", "autograder.student.colab", "ld-library-path"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RESNET_CUDA11_DIR": str(tmp_path / "none")})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("No CUDA 11 libraries to point LD_LIBRARY_PATH at")
    assert "python -m autograder.student.colab gpu" in result.stderr
    value, terminal = run_documented_export(tmp_path / "none")
    assert value == "/before" and "No CUDA 11 libraries" in terminal


def test_ld_library_path_prints_only_the_path(tmp_path):
    for pattern in colab.CUDA11_LIBRARIES:  # empty files with the wheels' names and places
        path = tmp_path / "cuda11" / "nvidia" / pattern.replace("*", "8.89")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    value, terminal = run_documented_export(tmp_path / "cuda11")
    folders = value.split(":")
    assert folders[-1] == "/before" and terminal == ""
    assert folders[:-1] == list(dict.fromkeys(str((tmp_path / "cuda11" / "nvidia" / p).parent)
                                              for p in colab.CUDA11_LIBRARIES))


# --- setting up on your own computer ---------------------------------------------------------------------

# Everything a command could leave behind in the shell that ran it: options, folder, environment, traps.
SHELL_STATE = 'state() { set -o; shopt; echo "cwd=$PWD"; export -p; trap -p; }'


def shell_before_and_after(command, cwd, interactive=False):
    """Run ``command`` in a bash shell; return (state before, state after, what it printed)."""
    script = f'{SHELL_STATE}\nstate > "$STATE_DIR/before"\n{command}\necho "status=$?"\nstate > "$STATE_DIR/after"\n'
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "VIRTUAL_ENV")}
    env["STATE_DIR"] = str(cwd)
    bash = ["bash", "--norc", "--noprofile"] + (["-i"] if interactive else [])
    result = subprocess.run(bash + ["-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    assert (cwd / "after").exists(), result.stdout + result.stderr  # the shell survived
    return (cwd / "before").read_text(), (cwd / "after").read_text(), result.stdout + result.stderr


def course_copy(tmp_path):
    """What scripts/make_venv.sh looks at, with a .venv that is up to date (so nothing is installed here)."""
    from autograder import course
    repo = tmp_path / "resnet-course"
    (repo / "scripts").mkdir(parents=True)
    for name in ("scripts/make_venv.sh", "requirements.txt", "pyproject.toml"):
        shutil.copy2(course.ROOT / name, repo / name)
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (repo / ".venv" / ".installed").touch()
    os.utime(repo / "requirements.txt", (0, 0))
    os.utime(repo / "pyproject.toml", (0, 0))
    return repo


def test_the_students_set_up_command_changes_nothing_in_their_shell(tmp_path):
    repo = course_copy(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    before, after, printed = shell_before_and_after(f"{repo}/scripts/make_venv.sh", work)
    assert "status=0" in printed
    assert after == before
    assert "MPLBACKEND" not in after  # Jupyter keeps its inline plots
    assert f"Start Jupyter in {repo} with:\n  .venv/bin/jupyter lab release/resnet18/resnet18.ipynb" in printed


def test_sourcing_the_internal_env_script_by_hand_changes_nothing_either(tmp_path):
    from autograder import course
    before, after, printed = shell_before_and_after(f"source {course.ROOT}/scripts/env.sh", tmp_path,
                                                    interactive=True)
    assert "status=1" in printed and "run scripts/make_venv.sh" in printed
    assert after == before


# --- the student guide says what runs ----------------------------------------------------------------------

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "students.md").read_text()


def guide_block(first_words):
    """The guide's fenced block whose first line starts with ``first_words``, as lines without indentation."""
    for block in re.findall(r"^ *```[a-z]*\n(.*?)^ *```", GUIDE, re.M | re.S):
        lines = [line.strip() for line in block.splitlines()]
        if lines and lines[0].startswith(first_words):
            return lines
    raise AssertionError(f"no block starting with {first_words!r} in docs/students.md")


def numbers_out(lines):
    """Lines with every number (durations, versions) as N: the guide's examples come from other machines."""
    return [re.sub(r"\d+(\.\d+)*", "N", line) for line in lines]


@pytest.fixture
def on_colab(monkeypatch, tmp_path):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_DEVICE", raising=False)
    monkeypatch.setitem(colab._state, "done", False)


def test_the_guides_cpu_setup_output_is_what_the_setup_prints(on_colab, monkeypatch, capsys):
    monkeypatch.setattr(colab, "gpu_info", lambda: None)  # a CPU runtime; MXNet and d2l are installed here
    colab.setup(started=time.time() - 24)
    printed = capsys.readouterr().out.splitlines()
    assert numbers_out(printed) == numbers_out(guide_block("Installing MXNet 1.9.1 (CPU build)"))


def test_the_guides_gpu_setup_output_is_what_the_setup_prints(on_colab, monkeypatch, capsys):
    monkeypatch.setattr(colab, "gpu_info", lambda: ("Tesla T4", (7, 5)))
    for step in ("install_cuda11_libraries", "pip", "pip_uninstall", "probe_gpu", "preload"):
        monkeypatch.setattr(colab, step, lambda *args, **kwargs: None)  # no downloads, no GPU here
    monkeypatch.setattr(colab, "installed", {"mxnet-cu112": colab.MXNET_VERSION, "d2l": colab.D2L_VERSION}.get)
    colab.setup(started=time.time() - 95)
    printed = capsys.readouterr().out.splitlines()
    assert numbers_out(printed) == numbers_out(guide_block("Installing MXNet's GPU build"))


def test_the_guides_restart_sentence_is_what_the_imports_cell_says(on_colab):
    with pytest.raises(colab.SetupFailed) as failed:
        colab.require_setup()
    start, end = re.search(r"`(This Python has not run the setup cell \()\.\.\.(\): [^`]*)`",
                           " ".join(GUIDE.split())).groups()
    assert str(failed.value).startswith(start) and str(failed.value).endswith(end)


def test_the_guides_self_check_example_is_what_the_self_check_prints():
    from autograder.student import selfcheck
    nb = json.loads((Path(__file__).resolve().parents[1] / "release" / "resnet18" / "resnet18.ipynb").read_text())
    for cell in nb["cells"]:
        cell["metadata"].pop("nbgrader", None)
    nb["cells"] = [c for c in nb["cells"] if "def make_stem" not in "".join(c["source"])]
    text, ok = selfcheck.report("resnet18", nb, "this Colab notebook", selfcheck.load_expected("resnet18"))
    example = guide_block("Self-check of this Colab notebook: 2 problem(s)")
    assert not ok and example == [line.strip() for line in text.splitlines()][:len(example)]


def test_the_guides_local_set_up_runs_as_written():
    from autograder import course
    commands = guide_block("git clone")
    assert commands[0] == f"git clone https://github.com/{boilerplate.UNPUBLISHED.repository}.git resnet-course"
    assert commands[1:] == ["cd resnet-course", "scripts/make_venv.sh",
                            ".venv/bin/jupyter lab release/resnet18/resnet18.ipynb"]
    assert os.access(course.ROOT / "scripts" / "make_venv.sh", os.X_OK)
    assert commands[3] in (course.ROOT / "scripts" / "make_venv.sh").read_text()  # the line it prints
    assert (course.ROOT / commands[3].split()[-1]).is_file()
    assert "scripts/env.sh" not in GUIDE and "source scripts" not in GUIDE
    assert DOCUMENTED_EXPORT in GUIDE
