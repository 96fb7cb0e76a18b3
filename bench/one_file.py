"""Benchmark: grading one file, as an instructor types it, against stock nbgrader on the same file.

Usage: python bench/one_file.py [--repeat 3]

In a fresh course directory (this repository's source/ and nbgrader_config.py, nothing else),
side by side in one run:

1. the first ``python -m autograder grade resnet18 FILE``: it also sets up the
   gradebook (``nbgrader generate_assignment``), and says so while it does;
2. regrading that student after a change to the file (a student sends a new
   version): the command, wall time, ``--repeat`` times, each with a new version;
3. ``--force`` on the unchanged file, ``--repeat`` times;
4. stock ``nbgrader autograde --student ID`` then ``generate_feedback`` on the
   same submission, in a course directory with nbgrader's default config
   (the kernel runs the notebook, once per command).

Each figure is the whole command, started from a shell: Python's start,
imports, warm-up of the sandbox, the run, recording, feedback and reports.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograder import course  # noqa: E402
from autograder.assign.demo import prepare_course  # noqa: E402
from autograder.grade.nbgrader_cli import nbgrader  # noqa: E402
from grade_vs_nbgrader import STOCK_CONFIG, make_submissions  # noqa: E402


def command(*args, cwd):
    """(seconds, stderr) of ``python -m autograder ARGS``, which must succeed."""
    env = dict(os.environ, PYTHONPATH=str(course.ROOT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"`python -m autograder {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stderr + done.stdout


def versions(count):
    """``count`` different notebooks of one student (the samples in turn, then their copies)."""
    notebooks = list(make_submissions(max(count, 1)).values())
    for index, nb in enumerate(notebooks):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"version {index}"))  # each version's bytes differ
    return notebooks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        course_dir = root / "course"
        shutil.copytree(course.SOURCE, course_dir / "source")
        shutil.copy(course.ROOT / "nbgrader_config.py", course_dir)
        file = root / "inbox" / "ada.ipynb"
        file.parent.mkdir()
        notebooks = versions(args.repeat + 1)
        nbformat.write(notebooks[0], file)
        grade = ["grade", "resnet18", str(file), "--course-dir", str(course_dir), "--no-progress"]
        first, said = command(*grade, cwd=root)
        setting_up = re.search(r"^setting up the gradebook.*$", said, re.M)
        changed = []
        for nb in notebooks[1:]:
            nbformat.write(nb, file)
            changed.append(command(*grade, cwd=root)[0])
        forced = [command(*grade, "--force", cwd=root)[0] for _ in range(args.repeat)]

        stock_dir = prepare_course(root / "stock")
        (stock_dir / "nbgrader_config.py").write_text(STOCK_CONFIG)
        target = stock_dir / "submitted" / "ada" / "resnet18" / "resnet18.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(notebooks[0], target)
        nbgrader(stock_dir, "db", "student", "add", "ada")
        start = time.perf_counter()
        nbgrader(stock_dir, "autograde", "resnet18", "--student", "ada", "--force")
        stock = time.perf_counter() - start
        nbgrader(stock_dir, "generate_feedback", "resnet18", "--student", "ada", "--force")
        stock_feedback = time.perf_counter() - start - stock

    print(f"one file, {os.cpu_count()} cores; wall seconds of each whole command")
    print(f"first grading of a fresh course (gradebook set up too): {first:5.1f} s")
    print(f"  it said: {setting_up.group(0) if setting_up else 'NOTHING about setting up the gradebook'}")
    print(f"regrading after a new version of the file:   {' '.join(f'{s:5.1f}' for s in changed)} s "
          f"(best {min(changed):.1f} s, goal at most 10 s)")
    print(f"regrading the unchanged file with --force:   {' '.join(f'{s:5.1f}' for s in forced)} s")
    print(f"stock nbgrader autograde --student:          {stock:5.1f} s; "
          f"with generate_feedback {stock + stock_feedback:5.1f} s")


if __name__ == "__main__":
    main()
