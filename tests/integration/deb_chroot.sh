#!/bin/sh
# deb_chroot.sh DEBDIR WORK: install the .debs of DEBDIR into a throwaway
# root and use them there (test_deb.py runs this under `unshare -m`, so
# every mount goes with the namespace). The root is the host's own files
# seen through an overlay whose upper layer is a tmpfs: the packages' deps
# are the host's, dpkg's database is the host's copy, and nothing reaches
# the host (an installed /etc/runrpc/rund.conf would change every other
# test's rund). What the upper layer holds after the purge is what the
# packages left behind: WORK/leftover.txt.
set -eu
debs=$1
work=$2
root=$work/root
mkdir -p "$work/layer" "$root"
mount -t tmpfs -o mode=0755 tmpfs "$work/layer"
mkdir "$work/layer/upper" "$work/layer/work"
mount -t overlay overlay \
  -o "lowerdir=/,upperdir=$work/layer/upper,workdir=$work/layer/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
# no /run/systemd/system in here: the maintainer scripts enable, never start
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mkdir "$root/tmp/debs"
pkgs=""
for p in runrpc librunrpc0 librunrpc-dev; do
  f=$(ls "$debs/${p}"_*.deb)
  cp "$f" "$root/tmp/debs/"
  pkgs="$pkgs /tmp/debs/$(basename "$f")"
done

in_root() { chroot "$root" "$@"; }

# man-db's trigger rebuilds the whole index (minutes on a busy machine):
# Debian's switch for it, in the throwaway root only
rm -f "$root/var/lib/man-db/auto-update"

echo "== install"
# shellcheck disable=SC2086 # three paths without blanks
in_root env DEBIAN_FRONTEND=noninteractive dpkg -i $pkgs
in_root dpkg-query -W -f='${Package} ${Status}\n' runrpc librunrpc0 librunrpc-dev
in_root dpkg-query -W -f='${Conffiles}\n' runrpc
echo "== version"
in_root /usr/bin/rund --version
in_root /usr/bin/runctl --version
echo "== pkg-config"
in_root pkg-config --modversion runrpc
echo "== enabled"
for f in "$root"/etc/systemd/system/multi-user.target.wants/rund*; do
  if [ -L "$f" ]; then basename "$f"; fi # absolute links: into the root, not ours
done

echo "== rund on a unix socket (reads the packaged /etc/runrpc/rund.conf)"
# chroot execs rund: $! is rund itself (a shell function would be a subshell)
chroot "$root" /usr/bin/rund --listen unix:/tmp/rund.sock --state-dir /tmp/state \
  >"$work/rund.log" 2>&1 &
rund=$!
trap 'kill -KILL $rund 2>/dev/null || true' EXIT
i=0
until in_root /usr/bin/runctl --addr unix:/tmp/rund.sock list >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 $rund 2>/dev/null; then
    echo "rund did not come up:" >&2
    cat "$work/rund.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "== exec"
in_root /usr/bin/runctl --addr unix:/tmp/rund.sock exec -- sh -c 'echo "hello from $(id -un)"'
echo "== start+wait"
id=$(in_root /usr/bin/runctl --addr unix:/tmp/rund.sock start -- sh -c 'exit 3')
rc=0
in_root /usr/bin/runctl --addr unix:/tmp/rund.sock wait "$id" || rc=$?
echo "wait exit $rc"
kill -TERM $rund
wait $rund || { echo "rund exited $?" >&2; cat "$work/rund.log" >&2; exit 1; }
trap - EXIT
rm -rf "$root/tmp/state"

echo "== remove"
in_root dpkg --remove runrpc librunrpc-dev librunrpc0
test -e "$root/etc/runrpc/rund.conf" && echo "conffile kept after remove"
echo "== purge"
in_root dpkg --purge runrpc librunrpc-dev librunrpc0
in_root dpkg-query -W -f='${Package} ${Status}\n' runrpc librunrpc0 librunrpc-dev 2>&1 || true
# what the layer holds now (whiteouts are the host files dpkg replaced)
(cd "$work/layer/upper" && find . -mindepth 1 \( -type f -o -type l -o -type c \) | sort) \
  >"$work/leftover.txt"
(cd "$work/layer/upper" && find . -mindepth 1 -type d | sort) >"$work/leftover-dirs.txt"
echo "== done"
