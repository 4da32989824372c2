#!/bin/sh
# Configure (once) and build one flavour of the tree.
#   scripts/build.sh release [DIR]   optimised with debug info (default DIR: build)
#   scripts/build.sh asan [DIR]      ASan+UBSan, -O2 -g (default DIR: build-asan)
# Both use --libdir=lib and --prefix=/usr/local so that `meson install
# --destdir D` lays out D/usr/local/{bin,lib,include}. A second run only
# calls ninja, which does nothing when nothing changed.
set -eu

cd "$(dirname "$0")/.."
mode=${1:-release}
case "$mode" in
release)
  dir=${2:-${BUILD_DIR:-build}}
  set -- --buildtype=debugoptimized
  ;;
asan)
  dir=${2:-${ASAN_BUILD_DIR:-build-asan}}
  # the project's default -O2 -g: what every module is checked with, and fast
  # enough for 1 GiB streams under ASan; frame pointers for readable traces
  set -- --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-omit-frame-pointer
  ;;
*)
  echo "usage: scripts/build.sh release|asan [BUILD_DIR]" >&2
  exit 2
  ;;
esac

if [ ! -f "$dir/build.ninja" ]; then
  # a dir left half-configured by an interrupted run is set up again from scratch
  if [ -d "$dir/meson-private" ]; then
    meson setup --wipe "$dir" --prefix=/usr/local --libdir=lib "$@"
  else
    meson setup "$dir" --prefix=/usr/local --libdir=lib "$@"
  fi
fi
ninja -C "$dir"
