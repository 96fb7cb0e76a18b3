"""Plain nbgrader, as the README tells an instructor to run it, on a fresh copy of the repository.

The README's commands run exactly as written (parsed from its "For
instructors" block) in a copy of the working tree made the way a clone is,
with submitted/ holding the attack suite and the damaged notebooks of the
batch grader's tests. ``nbgrader autograde`` must run the same trusted
pipeline as ``python -m autograder grade`` (autograder/grade/autograde.py):
the scores must be exactly the batch grader's (the tables of
test_batch_grading.py), no attack may reach the course or outlive grading,
and what the commands write must be ignored by git. The only difference from
an instructor's run: shorter sandbox limits, in a user-level nbgrader config
file as an instructor could have one, so the infinite loop ends sooner.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import course
from test_batch_grading import EXPECTED_ATTACKS, FULL, _bad_inputs, write_attacks

pytestmark = pytest.mark.skipif(not shutil.which("bwrap") and not os.environ.get("CI"),
                                reason="bubblewrap is needed for sandboxed grading")

README = (course.ROOT / "README.md").read_text()
DAMAGED = {"stripped_metadata": "Copy of stripped_metadata.ipynb", "deleted_tests": "deleted_tests.ipynb",
           "duplicated_tests": "duplicated_tests.ipynb", "nbformat3": "nbformat3.ipynb"}
REFUSED = {"empty": ("empty.ipynb", "does not appear to be JSON"),
           "wrong_assignment": ("wrong_assignment.ipynb", "this is the bottleneck notebook, not resnet18")}


def readme_commands():
    """The shell block of the README's "For instructors" section."""
    section = README.split("## For instructors", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def fresh_copy(target):
    """The working tree as a clone has it (tracked and not-ignored files), committed in a new repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=course.ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (course.ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(course.ROOT / name, target / name)
    # The environment ./demo.sh would have made there: this one, activated by the clone's .venv.
    (target / ".venv" / "bin").mkdir(parents=True)
    (target / ".venv" / "bin" / "activate").write_text(f"source {sys.prefix}/bin/activate\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=target, check=True)
    subprocess.run(git + ["add", "-A"], cwd=target, check=True)
    subprocess.run(git + ["commit", "-qm", "clone"], cwd=target, check=True)


def submit(root, student, notebook_file):
    target = root / "submitted" / student / "resnet18" / "resnet18.ipynb"
    target.parent.mkdir(parents=True)
    shutil.copy(notebook_file, target)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    base = tmp_path_factory.mktemp("clone")
    root, inbox, config = base / "resnet", base / "inbox", base / "jupyter"
    for folder in (root, inbox, config):
        folder.mkdir()
    fresh_copy(root)
    (config / "nbgrader_config.py").write_text(
        "c = get_config()\nc.TrustedExecute.timeout = 25\nc.TrustedExecute.cpu = 60\n"
        "c.TrustedExecute.memory = 3072\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    write_attacks(inbox, root, listener.getsockname()[1])
    _bad_inputs(inbox)
    for attack in EXPECTED_ATTACKS:
        submit(root, f"attack_{attack}", inbox / f"attack_{attack}.ipynb")
    for student, name in DAMAGED.items():
        submit(root, student, inbox / name)
    env = {**os.environ, "PYTHONPATH": str(root), "JUPYTER_CONFIG_DIR": str(config)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_commands()], cwd=root, env=env,
                          capture_output=True, text=True)
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    return {"root": root, "inbox": inbox, "env": env, "done": done, "connected": connected}


def _scores(root, student):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        by_id = {g.name: g.score for g in gb.find_submission_notebook("resnet18", "resnet18", student).grades}
    return {part: sum(by_id[g] for g in ids) for part, ids in course.parts_of(course.source_notebook("resnet18"))}


def test_readme_commands_run_as_written(clone):
    assert clone["done"].returncode == 0, clone["done"].stdout + clone["done"].stderr
    assert (clone["root"] / "grades.csv").exists()
    assert (clone["root"] / "feedback" / "deleted_tests" / "resnet18" / "resnet18.html").exists()


@pytest.mark.parametrize("attack", sorted(EXPECTED_ATTACKS))
def test_attacks_score_as_in_the_batch_grader(clone, attack):
    got = _scores(clone["root"], f"attack_{attack}")
    if attack == "memory_bomb":  # an upper bound there too
        assert all(got[p] <= EXPECTED_ATTACKS[attack][p] for p in FULL) and got["residual"] == FULL["residual"]
    else:
        assert got == EXPECTED_ATTACKS[attack]


@pytest.mark.parametrize("student", sorted(DAMAGED))
def test_damaged_notebooks_are_restored_and_graded_in_full(clone, student):
    assert _scores(clone["root"], student) == FULL
    assert f"{student}: " in clone["done"].stderr or student in ("nbformat3", "duplicated_tests")


def test_nothing_reaches_the_course_or_outlives_grading(clone):
    autograded = nbformat.read(clone["root"] / "autograded" / "attack_instructor_files" / "resnet18" /
                               "resnet18.ipynb", as_version=4)
    printed = " ".join(o.get("text", "") for c in autograded.cells if c.cell_type == "code" for o in c.outputs)
    assert "DENIED" in printed and str(clone["root"]) in printed  # the attack ran
    # Nothing was readable. (The clone is under /tmp, so the sandbox's private /tmp holds an empty
    # look-alike of its folder, where bubblewrap mounts the package: the attack may write there, and
    # the real files must be untouched.)
    assert "READ" not in printed
    for path in clone["root"].rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".db", ".py") and not {".venv", "tests"} & set(path.parts):
            assert b"pwned" not in path.read_bytes()[-100:], path
    assert not clone["connected"]
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "resnet-attack-leftover" not in listing


def test_what_the_commands_write_is_ignored_by_git(clone):
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone["root"], capture_output=True,
                            text=True, check=True).stdout
    assert status == ""


def test_readme_commands_run_again_with_new_submissions(clone):
    """Next week: the same block, one more student; the gradebook keeps everyone."""
    submit(clone["root"], "late_student", clone["inbox"] / "deleted_tests.ipynb")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_commands()], cwd=clone["root"],
                          env=clone["env"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _scores(clone["root"], "late_student") == FULL
    assert _scores(clone["root"], "stripped_metadata") == FULL
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone["root"], capture_output=True,
                          text=True).stdout == ""  # release/ regenerated as committed


def test_files_that_cannot_be_graded_are_refused_loudly(clone):
    for student, (name, _) in REFUSED.items():
        submit(clone["root"], student, clone["inbox"] / name)
    done = subprocess.run(["bash", "-c", "source .venv/bin/activate && nbgrader autograde resnet18"],
                          cwd=clone["root"], env=clone["env"], capture_output=True, text=True)
    assert done.returncode != 0
    for student, (_, reason) in REFUSED.items():
        assert f"for student '{student}'" in done.stderr and reason in done.stderr
        assert not (clone["root"] / "autograded" / student / "resnet18").exists()


def test_without_bubblewrap_nothing_is_graded(clone):
    submit(clone["root"], "unsandboxed", clone["inbox"] / "attack_instructor_files.ipynb")
    env = dict(clone["env"], PATH=os.path.join(sys.prefix, "bin"))  # no bwrap on PATH
    done = subprocess.run([os.path.join(sys.prefix, "bin", "nbgrader"), "autograde", "resnet18",
                           "--student=unsandboxed"], cwd=clone["root"], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "bubblewrap (bwrap) is not available" in done.stderr
    assert not (clone["root"] / "autograded" / "unsandboxed" / "resnet18").exists()
