#!/bin/sh
# Install every Debian 12 package that building, running and testing runrpc
# needs. Idempotent: when all are present it only asks dpkg (no network).
# Works on a bare Debian 12 (no make, no compiler); uses sudo when not root.
# RUNRPC_SKIP_DEPS=1 skips it (e.g. on a machine managed some other way).
# `deps.sh vm` installs only what `make test-vm` (tests/vm/run.py) needs;
# `deps.sh deb` also what `make deb` needs (debhelper, lintian, ...).
set -eu

# scdoc builds the man pages (docs/man); groff-base and man-db render them
# in the tests; zsh only checks the zsh completions (dist/completions)
PKGS="
build-essential
meson
ninja-build
pkg-config
libnghttp2-dev
libssl-dev
libprotobuf-c-dev
protobuf-c-compiler
protobuf-compiler
libprotobuf-dev
libjson-c-dev
libcmocka-dev
libseccomp-dev
libcap-dev
libsystemd-dev
dbus-daemon
libarchive-dev
libinih-dev
zlib1g-dev
python3
python3-grpcio
python3-grpc-tools
python3-pytest
python3-protobuf
xxd
nghttp2-client
hyperfine
procps
clang-format
clang
libclang-rt-14-dev
python3-h2
python3-prometheus-client
openssl
openssh-server
openssh-client
socat
util-linux
busybox-static
runc
containerd
umoci
skopeo
zstd
podman
conmon
crun
containernetworking-plugins
scdoc
groff-base
man-db
bash
zsh
"

# the cgroup v2 VM (tests/vm): qemu under TCG, a static busybox for the
# initramfs, mkfs.ext4 for its scratch disk, dpkg-deb/apt-get to unpack
# Debian's kernel into tests/vm/.cache (the kernel is never installed)
VM_PKGS="
qemu-system-x86
busybox-static
e2fsprogs
dpkg
apt
libc-bin
python3
python3-pytest
"

# make deb (scripts/deb.sh) and its test (tests/integration/test_deb.py,
# skipped without them): the build's own packages plus the Debian tools
DEB_PKGS="$PKGS
debhelper
dpkg-dev
fakeroot
lintian
"

if [ "${RUNRPC_SKIP_DEPS:-0}" = 1 ]; then
  exit 0
fi

# selects the VM's packages instead; the check-and-install below is shared
deps_vm() {
  PKGS=$VM_PKGS
}

case "${1:-}" in
vm) deps_vm ;;
deb) PKGS=$DEB_PKGS ;;
"") ;;
*)
  echo "deps.sh: unknown group \"$1\" (want vm or deb, or nothing)" >&2
  exit 2
  ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: this needs a Debian 12 system (dpkg-query and apt-get not found)" >&2
  exit 1
fi

missing=""
for p in $PKGS; do
  # "install ok installed" only; half-installed or removed packages count as missing
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$st" != "install ok installed" ]; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "deps.sh: missing packages:$missing; run as root or install sudo" >&2
  exit 1
fi

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is wanted
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
