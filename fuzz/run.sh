#!/bin/sh
# Build the libFuzzer targets (clang, ASan+UBSan, every library instrumented)
# in build-fuzz/ and run them.
#   fuzz/run.sh build                 configure (once) and build only
#   fuzz/run.sh smoke [SECONDS]       each target for SECONDS (default 20) on a
#                                     copy of its corpus; fails on any crash
#   fuzz/run.sh run TARGET SECONDS    one target; new inputs are kept in
#                                     build-fuzz/grown/TARGET (not the repo)
#   fuzz/run.sh merge TARGET          minimise build-fuzz/grown/TARGET into
#                                     fuzz/corpus/TARGET (-merge=1)
#   fuzz/run.sh long SECONDS [TARGET...]  each target in turn (run, then merge)
#   fuzz/run.sh list                  the target names
# Exits 77 (and says why) when clang or libFuzzer is not there.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${FUZZ_BUILD_DIR:-build-fuzz}
targets="h2_server request job_json tokens secrets_acl cert_san runctl_flags spec_json sandbox_params image_layer image_json image_user rund_config"

have_libfuzzer() {
  command -v clang >/dev/null 2>&1 || return 1
  tmpd=$(mktemp -d)
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$tmpd/f.c"
  clang -fsanitize=fuzzer -o "$tmpd/f" "$tmpd/f.c" >/dev/null 2>&1
  rc=$?
  rm -rf "$tmpd"
  return $rc
}

build() {
  if ! have_libfuzzer; then
    echo "fuzz/run.sh: skipped: clang with libFuzzer (-fsanitize=fuzzer) not available (Debian: apt-get install clang libclang-rt-14-dev)"
    exit 77
  fi
  if [ ! -f "$dir/build.ninja" ]; then
    [ -d "$dir/meson-private" ] && rm -rf "$dir"
    # every library gets coverage instrumentation; only fuzz_* link libFuzzer.
    # clang warns where gcc does not (a flexible-array struct inside another
    # in quota.c): the gcc builds are the warning gate, not this one
    CC=clang meson setup "$dir" -Dfuzz=enabled -Dtests=disabled \
      -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
      "-Dc_args=-fsanitize=fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wno-gnu-variable-sized-type-not-at-end" \
      >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; exit 1; }
    rm -f "$dir.setup.log"
  fi
  targets_built=""
  for x in $targets; do targets_built="$targets_built fuzz/fuzz_$x"; done
  # shellcheck disable=SC2086
  ninja -C "$dir" $targets_built >"$dir/ninja.log" 2>&1 || { cat "$dir/ninja.log" >&2; exit 1; }
}

dict_of() {
  [ -f "fuzz/$1.dict" ] && echo "-dict=fuzz/$1.dict"
  return 0
}

# run TARGET SECONDS CORPUS_DIRS...: libFuzzer writes new inputs to the first dir
run_one() {
  t=$1 secs=$2
  shift 2
  mkdir -p "$dir/crashes/$t"
  # shellcheck disable=SC2046
  ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/crashes/$t/" \
    $(dict_of "$t") "$@"
}

cmd=${1:-smoke}
case "$cmd" in
list)
  echo $targets
  ;;
long)
  secs=$2
  shift 2
  [ $# -gt 0 ] && targets="$*"
  for t in $targets; do
    "$0" run "$t" "$secs" >"$dir/long-$t.log" 2>&1 || echo "fuzz/run.sh: $t: FAILED (see $dir/long-$t.log)" >&2
    grep -E '^(stat::|Done)' "$dir/long-$t.log" | tr '\n' ' ' | sed "s/^/fuzz\/run.sh: $t: /"
    echo
    "$0" merge "$t" 2>"$dir/merge-$t.log" | tail -n 1
  done
  ;;
build)
  build
  ;;
smoke)
  secs=${2:-20}
  build
  status=0
  for t in $targets; do
    work="$dir/smoke/$t"
    rm -rf "$work"
    mkdir -p "$work"
    start=$(date +%s)
    if run_one "$t" "$secs" "$work" "fuzz/corpus/$t" >"$dir/smoke/$t.log" 2>&1; then
      execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/smoke/$t.log")
      echo "fuzz/run.sh: $t: ok, ${execs:-?} runs in $(($(date +%s) - start)) s"
    else
      echo "fuzz/run.sh: $t: FAILED (log: $dir/smoke/$t.log)" >&2
      tail -n 40 "$dir/smoke/$t.log" >&2
      status=1
    fi
  done
  exit $status
  ;;
run)
  t=$2 secs=$3
  build
  mkdir -p "$dir/grown/$t"
  run_one "$t" "$secs" "$dir/grown/$t" "fuzz/corpus/$t"
  ;;
merge)
  t=$2
  build
  mkdir -p "fuzz/corpus/$t"
  tmp="$dir/merged/$t"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # regression inputs (crashes once found) and named seeds stay whatever their
  # coverage, under their names: in the first dir, merge adds only what they lack
  for f in "fuzz/corpus/$t"/regress-* "fuzz/corpus/$t"/seed-*; do
    [ -f "$f" ] && cp "$f" "$tmp/"
  done
  run_one "$t" 600 -merge=1 "$tmp" "fuzz/corpus/$t" "$dir/grown/$t"
  rm -rf "fuzz/corpus/$t"
  mv "$tmp" "fuzz/corpus/$t"
  echo "fuzz/run.sh: fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sk "fuzz/corpus/$t" | cut -f1) KiB"
  ;;
*)
  echo "usage: fuzz/run.sh build|smoke [SECONDS]|run TARGET SECONDS|merge TARGET|list" >&2
  exit 2
  ;;
esac
