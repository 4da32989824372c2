#!/bin/sh
# Install the Debian packages, build (build/), then run rund in the
# foreground. With no arguments rund uses its embedded defaults (state in
# /var/lib/runrpc, socket unix:/run/runrpc/rund.sock); arguments go to rund,
# e.g. ./run.sh --listen unix:/tmp/r.sock --state-dir /tmp/r-state
set -eu
cd "$(dirname "$0")"

./scripts/deps.sh
./scripts/build.sh release
dir=${BUILD_DIR:-build}
rund="$dir/src/rund/rund"
if [ ! -x "$rund" ]; then
  echo "run.sh: $rund was not built" >&2
  exit 1
fi
# the embedded defaults live in root-owned directories
if [ "$#" -eq 0 ] && [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  exec sudo "$rund"
fi
exec "$rund" "$@"
