#!/bin/sh
# Install the Debian packages, build with ASan+UBSan (build-asan/), run the C
# unit tests (meson test), install into a temporary prefix and run every
# pytest under tests/integration/ against the installed binaries.
# Exits non-zero if anything failed. Extra arguments go to pytest
# (e.g. ./test.sh -k exec).
set -u
cd "$(dirname "$0")" || exit 1
root=$(pwd)

./scripts/deps.sh || exit 1
# tests/integration/test_deb.py (make deb, a few minutes) runs where its
# tools are installed; RUNRPC_TEST_DEB=1 installs them (.ci/run sets it)
if [ "${RUNRPC_TEST_DEB:-0}" = 1 ]; then
  ./scripts/deps.sh deb || exit 1
fi
./scripts/build.sh asan || exit 1
dir=${ASAN_BUILD_DIR:-build-asan}

# LeakSanitizer needs ptrace-like access that some containers forbid: probe it
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT INT TERM
# the install below goes in here: tests that run programs as uid 65534
# (runproc rootless, the shim as PID 1) must reach them (mktemp made it 0700)
chmod 755 "$probe"
leaks=0
printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void){p=malloc(7);p=0;return 0;}\n' >"$probe/l.c"
if cc -fsanitize=address -o "$probe/l" "$probe/l.c" 2>/dev/null; then
  if ASAN_OPTIONS=detect_leaks=1 "$probe/l" 2>&1 | grep -q 'ERROR: LeakSanitizer: detected memory leaks'; then
    leaks=1
  fi
fi
echo "test.sh: LeakSanitizer $( [ $leaks = 1 ] && echo works: detect_leaks=1 || echo unusable here: detect_leaks=0)"
ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=$leaks:print_stacktrace=1"
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
LSAN_OPTIONS="print_suppressions=0"
export ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

status=0

echo "== format check (clang-format, .clang-format)"
if ! find src include tests/unit tests/*.c bench -name '*.[ch]' -print0 2>/dev/null |
  xargs -0 clang-format --dry-run -Werror; then
  echo "test.sh: format check FAILED (run: make format)" >&2
  status=1
fi

echo "== unit tests (meson test, $dir)"
if ! meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 3; then
  echo "test.sh: unit tests FAILED (integration tests run anyway)" >&2
  status=1
fi

echo "== fuzz smoke (fuzz/run.sh: each libFuzzer target ${RUNRPC_FUZZ_SECONDS:-20} s on its corpus)"
if [ "${RUNRPC_SKIP_FUZZ:-0}" = 1 ]; then
  echo "test.sh: fuzz smoke skipped (RUNRPC_SKIP_FUZZ=1)"
else
  FUZZ_ASAN_OPTIONS="detect_leaks=$leaks:allocator_may_return_null=1" ./fuzz/run.sh smoke "${RUNRPC_FUZZ_SECONDS:-20}"
  rc=$?
  if [ $rc = 77 ]; then
    echo "test.sh: fuzz smoke skipped: libFuzzer unavailable"
  elif [ $rc != 0 ]; then
    echo "test.sh: fuzz smoke FAILED (crashes under build-fuzz/crashes/)" >&2
    status=1
  fi
fi

echo "== install into a temporary prefix"
destdir="$probe/destdir"
if ! meson install -C "$dir" --no-rebuild --quiet --destdir "$destdir"; then
  echo "test.sh: meson install failed" >&2
  exit 1
fi
PREFIX="$destdir/usr/local"
RUND="$PREFIX/bin/rund"
RUNCTL="$PREFIX/bin/runctl"
# a test gRPC server built by src/rpc (not installed): used by the transport tests
if [ -z "${RPC_TESTSERVER:-}" ]; then
  RPC_TESTSERVER=$(find "$dir" -type f -perm -u+x \( -name 'rpc_testserver' -o -name 'rpc-testserver' -o -name 'testserver' \) 2>/dev/null | head -n 1)
fi
LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PREFIX RUND RUNCTL RPC_TESTSERVER LD_LIBRARY_PATH
export RUNRPC_SOURCE_ROOT="$root" PYTHONDONTWRITEBYTECODE=1
ls -l "$PREFIX/bin" "$PREFIX/lib" 2>/dev/null | sed 's/^/  /'

# cgroup v2 in a qemu VM (tests/vm/README.md), with the same installed rund
# and runctl. It runs BEFORE the main pytest run so that pytest's summary of
# that run stays the last line printed; its result is folded into $status.
# The extra arguments are for the main run only. RUNRPC_SKIP_VM=1 skips it.
if [ "${RUNRPC_SKIP_VM:-0}" = 1 ]; then
  echo "== cgroup v2 VM: skipped (RUNRPC_SKIP_VM=1)"
else
  echo "== cgroup v2 VM (tests/vm/run.py: qemu TCG, Debian kernel, rund inside)"
  if ! ./scripts/deps.sh vm || ! timeout -k 30 900 /usr/bin/python3 tests/vm/run.py; then
    echo "test.sh: cgroup v2 VM tests FAILED (integration tests run anyway)" >&2
    status=1
  fi
  echo "== runrpc as PID 1 of the VM (tests/vm/run_shim.py)"
  if ! timeout -k 30 600 /usr/bin/python3 tests/vm/run_shim.py; then
    echo "test.sh: runrpc PID 1 VM tests FAILED (integration tests run anyway)" >&2
    status=1
  fi
fi

echo "== integration tests (pytest, installed binaries in $PREFIX)"
# a hard ceiling on the whole run; each test also has its own timeout (conftest.py)
timeout -k 30 1380 /usr/bin/python3 -m pytest tests/integration -p no:cacheprovider \
  -v -rfEs --durations=15 "$@"
rc=$?
# nothing is printed after pytest's summary: CI reads the closing line
[ $rc -ne 0 ] && status=1
exit $status
