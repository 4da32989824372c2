#!/bin/sh
# make deb: the Debian packages (debian/) built from this tree into
# ${DEB_OUT:-build-deb}/: runrpc, librunrpc0 and librunrpc-dev .debs, then
# lintian on them (warnings fail it). The tree is copied first (tracked and
# new, unignored files of a git checkout; else all but build*/ and .git), so
# dpkg-buildpackage writes nothing into the checkout or its parent.
# DEB_BUILD_OPTIONS defaults to "nocheck" (the unit tests run in ./test.sh;
# DEB_BUILD_OPTIONS= runs them in the package build too).
set -eu
cd "$(dirname "$0")/.."

for tool in dpkg-buildpackage dh lintian; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deb.sh: $tool not found: ./scripts/deps.sh deb installs what make deb needs" >&2
    exit 1
  fi
done

out=${DEB_OUT:-build-deb}
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
src="$out/runrpc-$version"
rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # files deleted but not yet committed are still listed: only those that exist
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done; true' sh |
    tar --null -T - -cf - | tar -xf - -C "$src"
else
  tar --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

jobs=$(nproc 2>/dev/null || echo 2)
(
  cd "$src"
  DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS-nocheck} parallel=$jobs" \
    dpkg-buildpackage -b -us -uc --no-pre-clean
)
changes=$(ls "$out"/runrpc_"$version"_*.changes)
lintian --fail-on error,warning --display-info "$changes"
echo "deb.sh: built $(cd "$out" && ls ./*.deb | tr '\n' ' ')in $out/"
