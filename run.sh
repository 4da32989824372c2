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
case $rund in /*) ;; *) rund="$(pwd)/$rund" ;; esac
# the embedded defaults live in root-owned directories: sudo for them
sudo=
if [ "$#" -eq 0 ] && [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo=sudo
fi
set -- "$rund" "$@"
# On a cgroup v2 host run by systemd (Debian 12's default) the terminal's
# cgroup holds other processes, so rund could not enable controllers there
# for its jobs' limits: as root, give it a delegated cgroup of its own, as its
# systemd unit would (Delegate=yes), still in the foreground.
# RUNRPC_NO_SCOPE=1 leaves it where it is.
if [ "${RUNRPC_NO_SCOPE:-0}" != 1 ] && { [ -n "$sudo" ] || [ "$(id -u)" = 0 ]; } &&
  [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -d /run/systemd/system ] &&
  command -v systemd-run >/dev/null 2>&1; then
  set -- systemd-run --scope --quiet --collect -p Delegate=yes "$@"
fi
exec $sudo "$@"
