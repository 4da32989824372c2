"""What the tests of runproc behind real callers (containerd, podman) share:
an OCI image made offline (umoci + skopeo + busybox-static, no registry),
a wrapper that runs the installed runproc with the sanitizer options (the
callers do not pass our environment on) and reports into files, and the
cgroups below our own that the containers are placed in."""
import os
import shutil
import subprocess

import pytest

from conftest import RUNPROC, SANITIZER_RE

IMAGE_REF = "localhost/rr-busybox:1"


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip("%s is not installed (scripts/deps.sh installs it)" % t)


def make_image_archive(tmp, fmt="oci-archive"):
    """An image of a static busybox with its applet links, /bin/sh as cmd,
    written as tmp/image.tar (fmt: oci-archive or docker-archive)."""
    need("umoci", "skopeo")
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox-static is not installed")
    layout = os.path.join(tmp, "oci")
    bundle = os.path.join(tmp, "unpacked")

    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", layout + ":bb")
    run("umoci", "unpack", "--image", layout + ":bb", bundle)
    bindir = os.path.join(bundle, "rootfs", "bin")
    os.makedirs(bindir, exist_ok=True)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(bundle, "rootfs", d), exist_ok=True)
    shutil.copy2(bb, os.path.join(bindir, "busybox"))
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", os.path.join(bindir, name))
    run("umoci", "repack", "--image", layout + ":bb", bundle)
    run("umoci", "config", "--image", layout + ":bb", "--config.cmd", "/bin/sh")
    archive = os.path.join(tmp, "image.tar")
    run("skopeo", "copy", "oci:" + layout + ":bb", "%s:%s:%s" % (fmt, archive, IMAGE_REF))
    shutil.rmtree(bundle)
    return archive


def runproc_wrapper(tmp):
    """A script that runs the installed runproc with LD_LIBRARY_PATH and
    the sanitizer options of our environment, sanitizer reports going to
    files tmp/asan.* (the container's stdio is the caller's FIFOs)."""
    path = os.path.join(tmp, "runproc-wrapper")
    report = os.path.join(tmp, "asan")
    env = ""
    for k in ("LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        v = os.environ.get(k, "")
        if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            v = (v + ":" if v else "") + "log_path=" + report
        env += "export %s='%s'\n" % (k, v)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n%sexec '%s' \"$@\"\n" % (env, RUNPROC))
    os.chmod(path, 0o755)
    return path


def sanitizer_reports(tmp):
    """Text of the sanitizer reports the wrapper's runs left (none: "")."""
    out = ""
    for name in sorted(os.listdir(tmp)):
        if name.startswith("asan."):
            with open(os.path.join(tmp, name), errors="replace") as f:
                text = f.read()
            if SANITIZER_RE.search(text):
                out += text
    return out


def own_cgroup_dirs():
    """Our own cgroup directory in each v1 hierarchy (controller list ->
    path), e.g. memory's is below the hierarchy's root on this host."""
    dirs = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                continue
            name = ctrls.replace("name=", "")
            d = os.path.join("/sys/fs/cgroup", name, path.lstrip("/"))
            if os.path.isdir(d):
                dirs[ctrls] = d
    if not dirs:
        pytest.skip("no cgroup v1 hierarchies here")
    return dirs


def own_cgroup_deepest():
    """Our deepest own cgroup path ("/a/b/"), which must be below our path in
    every other v1 hierarchy: podman's --cgroup-parent is one absolute path
    that it makes in all hierarchies."""
    paths = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls and not ctrls.startswith("name="):
                paths.append(path.rstrip("/") + "/")
    if not paths:
        pytest.skip("no cgroup v1 hierarchies here")
    deepest = max(paths, key=len)
    if not all(deepest.startswith(p) for p in paths):
        pytest.skip("our own cgroups differ per hierarchy: %s" % paths)
    return deepest


def cgroups_named(name):
    """The directories NAME below our own cgroup that exist: below our own
    directory of each hierarchy, and below our deepest own path in every
    hierarchy (podman and containerd take one absolute cgroup parent and make
    it in all hierarchies, also where our own cgroup is the root)."""
    bases = set(own_cgroup_dirs().values())
    with open("/proc/self/cgroup") as f:
        deepest = max((line.rstrip("\n").split(":", 2)[2].lstrip("/") for line in f), key=len)
    for h in os.listdir("/sys/fs/cgroup"):
        bases.add(os.path.join("/sys/fs/cgroup", h, deepest))
    return sorted(os.path.join(d, name) for d in bases if os.path.isdir(os.path.join(d, name)))


def absent_parent_dirs():
    """Directories of our deepest own cgroup path (and its parents) missing
    from the other hierarchies: podman makes them (mkdir -p) for its
    absolute --cgroup-parent; remove_parent_dirs takes them away after."""
    with open("/proc/self/cgroup") as f:
        deepest = max((line.rstrip("\n").split(":", 2)[2].strip("/") for line in f), key=len)
    parts = deepest.split("/") if deepest else []
    out = []
    for h in os.listdir("/sys/fs/cgroup"):
        for i in range(len(parts), 0, -1):
            d = os.path.join("/sys/fs/cgroup", h, *parts[:i])
            if not os.path.isdir(d):
                out.append(d)
    return sorted(out, key=len, reverse=True)


def remove_parent_dirs(dirs):
    """rmdir what absent_parent_dirs listed (deepest first; those still in
    use stay)."""
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass


def remove_cgroup_tree(name):
    """rmdir NAME below our own cgroup in every hierarchy, deepest first
    (what is left must be empty: a leftover process is a failure)."""
    left = []
    for top in cgroups_named(name):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError as e:
                left.append("%s: %s" % (dirpath, e))
    return left
