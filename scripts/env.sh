# Internal: sourced by demo.sh and test.sh, which run in their own process. It turns on
# `set -euo pipefail`, changes to the repository, activates .venv and exports MPLBACKEND=Agg
# (no windows while testing), none of which belongs in your own shell: to set up .venv,
# run scripts/make_venv.sh instead.
case $- in
  *i*) echo "scripts/env.sh is for demo.sh and test.sh; to set up, run scripts/make_venv.sh (without source)." >&2
       return 1 ;;
esac
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/make_venv.sh --quiet
# The batch grader's sandbox; installed when we can (root with apt), else the tests that need it skip.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing bubblewrap with apt-get ..."
  { apt-get install -y -qq bubblewrap || { apt-get update -qq && apt-get install -y -qq bubblewrap; }; } >/dev/null 2>&1 ||
    echo "bubblewrap could not be installed: sandboxed grading tests will be skipped." >&2
fi
# A headless browser for the feedback page's layout test; installed when we can, else that test skips.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing chromium with apt-get (for the feedback page test) ..."
  { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } >/dev/null 2>&1 ||
    echo "chromium could not be installed: the feedback page test will be skipped." >&2
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export MPLBACKEND=${MPLBACKEND:-Agg}
