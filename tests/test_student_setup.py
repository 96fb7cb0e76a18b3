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
import os
import socket
import subprocess
import sys
import threading

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
