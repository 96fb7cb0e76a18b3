#!/usr/bin/env bash
# Set up (first run), then run the whole test suite.
source "$(dirname "$0")/scripts/env.sh"
python -m pytest -q "$@"
