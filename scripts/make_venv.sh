#!/usr/bin/env bash
# Make .venv in the repository: Python 3.11 with the pinned stack of requirements.txt
# (MXNet 1.9.1, d2l 1.0.3, Jupyter; nbgrader too in the instructor's repository) and this course's package; remake it when
# requirements.txt or pyproject.toml changed, else leave it alone. Then say how to start Jupyter.
#
#   scripts/make_venv.sh [--quiet]      (--quiet: without that last message; demo.sh and test.sh use it)
#
# Run it as a command, not with `source`: it runs in its own process, so your shell's
# options, folder and environment stay as they were. It sets no plot backend.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The system's Python first: every user can read it, so a root grader can run the sandbox as an
# unprivileged user (a Python under /root, such as pyenv's, cannot be bound into that sandbox).
find_python() {
  for candidate in /usr/bin/python3.11 python3.11 "$HOME/.pyenv/versions/3.11"*/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || [ requirements.txt -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  if ! PYTHON=$(find_python); then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "Installing Python 3.11 with apt-get ..."
      apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-dev >/dev/null
    fi
    PYTHON=$(find_python) || { echo "Python 3.11 is needed (MXNet 1.9.1 has no wheels for newer Pythons with NumPy 1.23)." >&2; exit 1; }
  fi
  echo "Setting up .venv with $PYTHON (first run takes a few minutes) ..."
  rm -rf .venv
  "$PYTHON" -m venv .venv
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -r requirements.txt -e .; } > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "Installing the requirements failed (full log: .venv/install.log)." >&2
    exit 1
  fi
  touch .venv/.installed
fi

if [ "${1:-}" != "--quiet" ]; then
  echo "Ready: .venv has MXNet 1.9.1, d2l 1.0.3, Jupyter and the course's checks. Start Jupyter in $PWD with:"
  echo "  .venv/bin/jupyter lab release/resnet18/resnet18.ipynb"
fi
