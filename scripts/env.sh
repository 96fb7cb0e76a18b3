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
# System programs the tests start for real; installed when we can (root with apt), else the
# tests that need them skip (CI runs as root, so there they are always present).
#   apt_install PACKAGE PRESENT_TEST WHAT_SKIPS
apt_install() {
  eval "$2" && return 0
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 0
  echo "Installing $1 with apt-get ..."
  { apt-get install -y -qq "$1" || { apt-get update -qq && apt-get install -y -qq "$1"; }; } >/dev/null 2>&1 ||
    echo "$1 could not be installed: $3 will be skipped." >&2
}
apt_install bubblewrap "command -v bwrap >/dev/null 2>&1" "sandboxed grading tests"
apt_install chromium "command -v chromium >/dev/null 2>&1" "the feedback page test"
apt_install postgresql "compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1" \
  "the PostgreSQL gradebook tests"
# The unprivileged host user a root grader runs the sandbox as (autograder/grade/sandbox/pool.py):
# a file root can read is then not readable from the sandbox. Without it the grader says so.
if [ "$(id -u)" = 0 ] && ! id resnet-sandbox >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin resnet-sandbox ||
    echo "The user resnet-sandbox could not be created: the sandbox will run as host root." >&2
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export MPLBACKEND=${MPLBACKEND:-Agg}
