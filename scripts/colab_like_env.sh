#!/usr/bin/env bash
# Make (once) and print the path of a Colab-like Python: Python 3.12 with
# NumPy 2.x, SciPy, scikit-learn, pandas, matplotlib and IPython 9 preinstalled, the way
# today's Google Colab image has them, and none of the course's own stack
# (no mxnet, no d2l, no nbgrader, no course package). The release notebooks'
# setup cell then installs mxnet and d2l into it exactly as it does on Colab.
#
#   scripts/colab_like_env.sh [folder]      (default: .colab-venv)
#
# The venv is kept between runs and remade only when the package list below
# changes. Python 3.12 is taken from PYTHON312, python3.12 on PATH, or pyenv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${1:-.colab-venv}

# What the Colab image preinstalls that the notebooks touch. NumPy is Colab's
# 2.0.x line; override with COLAB_LIKE_NUMPY (e.g. 'numpy>=2') to try others.
PACKAGES=(
  "${COLAB_LIKE_NUMPY:-numpy==2.0.2}"
  "scipy>=1.13"
  "scikit-learn>=1.5"
  "pandas>=2.2"
  "matplotlib>=3.9"
  "matplotlib-inline"
  "ipython>=9"
  "ipykernel"
  "nbclient>=0.10"
  "nbformat>=5.9"
  "requests"
  "setuptools"
  "wheel"
)
STAMP="$VENV/.colab-like-packages"

find_python312() {
  for candidate in "${PYTHON312:-}" python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  PYTHON=$(find_python312) || { echo "Python 3.12 is needed for the Colab-like environment (set PYTHON312)." >&2; exit 1; }
  echo "Making the Colab-like environment $VENV with $PYTHON ..." >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}" >&2
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
  echo "${PACKAGES[*]}" > "$STAMP"
fi
echo "$(cd "$VENV" && pwd)/bin/python"
