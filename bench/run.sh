#!/bin/sh
# Run every benchmark against the release build (build/, or $BUILD_DIR) and
# print a table of ratios against baselines measured in the same run.
# Arguments go to bench.py (--quick, --only 13, --build DIR).
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/bench.py "$@"
