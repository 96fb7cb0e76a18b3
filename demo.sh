#!/usr/bin/env bash
# Set up (first run), then grade the bundled sample submissions with real nbgrader.
source "$(dirname "$0")/scripts/env.sh"
python -m autograder demo "$@"
