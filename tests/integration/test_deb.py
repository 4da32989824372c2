"""The Debian packages (issue 17, `make deb`): built from the tree with
debhelper (scripts/deb.sh), lintian clean, then installed into a throwaway
root made of the host's own files under an overlay (deb_chroot.sh, in a
mount namespace of its own: the host never gets the package), used there
(rund --version, an exec and a job over a unix socket), removed and purged
with nothing left behind but what policy allows.

Skipped when make deb's tools are absent (`./scripts/deps.sh deb` installs
them; plain CI does not), and without root (mounts, chroot, dpkg).
"""

import os
import shutil
import subprocess
import tempfile

import pytest

SRC = os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb")
MISSING = [t for t in TOOLS if not shutil.which(t)]


def overlay_ok():
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason="make deb's tools are absent (%s): "
                       "./scripts/deps.sh deb installs them" % ", ".join(MISSING)),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, chroot, dpkg)"),
    pytest.mark.skipif(not shutil.which("unshare") or not overlay_ok(),
                       reason="needs unshare and overlayfs"),
]

PACKAGES = ("runrpc", "librunrpc0", "librunrpc-dev")


@pytest.fixture(scope="module")
def debs():
    """scripts/deb.sh into a temporary dir: (dir, its output)."""
    d = tempfile.mkdtemp(prefix="rr-deb-", dir="/tmp")
    out = os.path.join(d, "deb")
    env = dict(os.environ, DEB_OUT=out)
    for k in ("LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        env.pop(k, None)  # a clean build, not the test's ASan install
    p = subprocess.run([os.path.join(SRC, "scripts", "deb.sh")], cwd=SRC, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    text = p.stdout.decode(errors="replace")
    try:
        yield out, p.returncode, text
    finally:
        shutil.rmtree(d, ignore_errors=True)


def deb_path(out, pkg):
    names = [f for f in os.listdir(out) if f.startswith(pkg + "_") and f.endswith(".deb")]
    assert len(names) == 1, (pkg, os.listdir(out))
    return os.path.join(out, names[0])


def deb_field(path, field):
    return subprocess.run(["dpkg-deb", "-f", path, field], check=True,
                          stdout=subprocess.PIPE).stdout.decode().strip()


def deb_files(path):
    p = subprocess.run(["dpkg-deb", "-c", path], check=True, stdout=subprocess.PIPE)
    return {line.split()[5].lstrip(".") for line in p.stdout.decode().splitlines()}


@pytest.mark.timeout(1800)
def test_packages_build_lintian_clean(debs):
    out, rc, text = debs
    # deb.sh runs lintian --fail-on error,warning: rc 0 means no E: or W:
    assert rc == 0, text[-6000:]
    tags = [ln for ln in text.splitlines() if ln[:3] in ("E: ", "W: ")]
    assert not tags, tags
    runrpc = deb_files(deb_path(out, "runrpc"))
    for f in ("/usr/bin/rund", "/usr/bin/runctl", "/usr/bin/runproc", "/usr/bin/runrpc",
              "/usr/libexec/runrpc/rund-waiter", "/lib/systemd/system/rund.service",
              "/lib/systemd/system/rund.socket", "/etc/runrpc/rund.conf",
              "/usr/share/man/man8/rund.8.gz", "/usr/share/man/man1/runctl.1.gz",
              "/usr/share/bash-completion/completions/runctl", "/usr/share/zsh/vendor-completions/_rund",
              "/usr/share/doc/runrpc/copyright"):
        assert f in runrpc, (f, sorted(runrpc))
    lib = deb_files(deb_path(out, "librunrpc0"))
    assert "/usr/lib/x86_64-linux-gnu/librunrpc.so.0.1.0" in lib or \
        any(f.endswith("/librunrpc.so.0.1.0") for f in lib), lib
    assert any(f.endswith("/runrpc/librunrpc-tls.so") for f in lib), lib
    dev = deb_files(deb_path(out, "librunrpc-dev"))
    for suffix in ("/include/runrpc/client.h", "/librunrpc.so", "/librunrpc.a",
                   "/pkgconfig/runrpc.pc"):
        assert any(f.endswith(suffix) for f in dev), (suffix, dev)
    # dependencies from the shared libraries' shlibs, the library exactly this build
    depends = deb_field(deb_path(out, "runrpc"), "Depends")
    for dep in ("libinih1", "libnghttp2-14", "libprotobuf-c1", "libjson-c5", "libseccomp2",
                "libcap2", "libarchive13", "libssl3", "libc6", "librunrpc0 (= "):
        assert dep in depends, depends
    assert "libssl3" in deb_field(deb_path(out, "librunrpc0"), "Depends")
    # the default config is a conffile
    p = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb_path(out, "runrpc")], check=True,
                       stdout=subprocess.PIPE)
    t = subprocess.run(["tar", "-xOf", "-", "./conffiles"], input=p.stdout, check=True,
                       stdout=subprocess.PIPE)
    assert t.stdout.decode().split() == ["/etc/runrpc/rund.conf"]


# what dpkg, ldconfig and the overlay itself may leave in the throwaway root
ALLOWED_LEFT = {"./etc/ld.so.cache", "./var/cache/ldconfig/aux-cache", "./var/lib/dpkg/lock",
                "./var/lib/dpkg/lock-frontend", "./var/lib/dpkg/status",
                "./var/lib/dpkg/status-old", "./var/lib/dpkg/triggers/Lock",
                "./var/lib/dpkg/triggers/Unincorp", "./var/lib/dpkg/diversions",
                "./var/lib/dpkg/diversions-old", "./var/log/dpkg.log",
                "./var/lib/dpkg/available", "./var/lib/dpkg/available-old",
                "./var/lib/man-db/auto-update"}  # deb_chroot.sh's own change


@pytest.mark.timeout(900)
def test_install_use_remove_purge_in_a_throwaway_root(debs):
    out, rc, text = debs
    assert rc == 0, text[-3000:]
    work = tempfile.mkdtemp(prefix="rr-debroot-", dir="/tmp")
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh",
                            os.path.join(HERE, "deb_chroot.sh"), out, work],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        log = p.stdout.decode(errors="replace")
        assert p.returncode == 0, log[-6000:]
        for want in ("runrpc install ok installed", "librunrpc0 install ok installed",
                     "/etc/runrpc/rund.conf ", "rund 0.1.0\n", "runctl 0.1.0\n",
                     "== pkg-config\n0.1.0\n", "== enabled\nrund.service\n",
                     "hello from root\n", "wait exit 3\n", "conffile kept after remove",
                     "Purging configuration files for runrpc"):
            assert want in log, (want, log[-6000:])
        # the packaged config is what rund read (all keys commented: none set)
        with open(os.path.join(work, "rund.log")) as f:
            rlog = f.read()
        assert 'msg="config" file="/etc/runrpc/rund.conf" keys=0' in rlog, rlog
        with open(os.path.join(work, "leftover.txt")) as f:
            left = set(f.read().split())
        assert left <= ALLOWED_LEFT, sorted(left - ALLOWED_LEFT)
        # directories in the layer are the host's own (copied up), none new
        with open(os.path.join(work, "leftover-dirs.txt")) as f:
            dirs = f.read().split()
        new = [d for d in dirs if not os.path.isdir(os.path.join("/", d))]
        assert not new, new
    finally:
        shutil.rmtree(work, ignore_errors=True)
