# Sourced by demo.sh and test.sh: make .venv (Python 3.11 + requirements.txt +
# this package) if it is missing or older than requirements.txt, then activate it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in python3.11 "$HOME/.pyenv/versions/3.11"*/bin/python3 python3; do
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
# The batch grader's sandbox; installed when we can (root with apt), else the tests that need it skip.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing bubblewrap with apt-get ..."
  { apt-get install -y -qq bubblewrap || { apt-get update -qq && apt-get install -y -qq bubblewrap; }; } >/dev/null 2>&1 ||
    echo "bubblewrap could not be installed: sandboxed grading tests will be skipped." >&2
fi
# A PostgreSQL server for the shared-gradebook tests (they start their own on loopback); else they skip.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1 &&
   command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing postgresql with apt-get ..."
  { apt-get install -y -qq postgresql || { apt-get update -qq && apt-get install -y -qq postgresql; }; } >/dev/null 2>&1 ||
    echo "postgresql could not be installed: the PostgreSQL gradebook tests will be skipped." >&2
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export MPLBACKEND=${MPLBACKEND:-Agg}
