#!/usr/bin/python3
"""Boot Debian's kernel under qemu (TCG) with a busybox initramfs holding our
rund, mount cgroup2 there, and run the limit tests against that rund from the
host over TLS (hostfwd on 127.0.0.1). See tests/vm/README.md.

Binaries: $RUND / $RUNCTL (test.sh's install), else build/.
`run.py --bench-runproc N`: runproc vs crun and runc in the VM instead
(bench_runproc.py).
`run.py --bench N` runs bench/startwait inside the VM instead of the tests
(start+wait of /bin/true on rund's unix socket, without and with every
limit: the cost of a v2 cgroup) and prints one line
"vm-bench: local_us=.. plain_us=.. limits_us=..".
Exit status: 0 all passed, 1 a test or a check failed, 2 the VM did not come
up (or could not be prepared). Every wait is bounded.
"""

import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.environ.get("RUNRPC_VM_CACHE") or os.path.join(HERE, ".cache")
RUND = os.environ.get("RUND") or os.path.join(ROOT, "build", "src", "rund", "rund")
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")
STARTWAIT = os.environ.get("STARTWAIT") or os.path.join(ROOT, "build", "bench", "startwait")
# runproc goes into the VM too (test_vm_runproc.py): $RUNPROC, else next to rund
RUNPROC = os.environ.get("RUNPROC") or os.path.join(os.path.dirname(RUND), "runproc")
BUSYBOX = "/bin/busybox"

GUEST_PORT = 7734
BOOT_TIMEOUT = float(os.environ.get("RUNRPC_VM_BOOT_TIMEOUT", "180"))
PYTEST_TIMEOUT = float(os.environ.get("RUNRPC_VM_PYTEST_TIMEOUT", "600"))
SHUTDOWN_TIMEOUT = 60.0
# what the guest needs loaded (deps are added from each module's depends=)
WANT_MODULES = ["virtio_pci", "virtio_net", "virtio_blk", "crc32c_generic", "ext4"]
SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)")
TESTS = [os.path.join("tests", "vm", "test_vm_smoke.py"),
         os.path.join("tests", "vm", "test_vm_sandbox.py"),
         os.path.join("tests", "vm", "test_vm_runproc.py"),
         os.path.join("tests", "integration", "test_limits.py")]


def log(msg):
    print("test-vm: " + msg, flush=True)


class Fail(Exception):
    """The VM could not be prepared or booted (exit 2)."""


# --------------------------------------------------------------------------
# kernel: Debian's linux-image-amd64, unpacked into the cache (never installed)


def _run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=kw.pop("timeout", 300), **kw)


def _kernel_package():
    """linux-image-X-amd64 that linux-image-amd64 depends on, or None."""
    for attempt in range(2):
        r = _run(["apt-cache", "depends", "linux-image-amd64"])
        m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)", r.stdout)
        if m:
            return m.group(1)
        if attempt == 0:
            # empty package lists (fresh machine): fetch them once
            log("apt-cache does not know linux-image-amd64: apt-get update")
            _run(["apt-get", "update", "-q"], timeout=300)
    return None


def _find_ko(tree, name):
    hits = glob.glob(os.path.join(tree, "**", name + ".ko"), recursive=True)
    return hits[0] if hits else None


def _ko_depends(path):
    # .modinfo holds NUL-separated key=value strings
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return m.group(1).decode().split(",")


def ensure_kernel():
    """Returns (vmlinuz, module dir, ordered module names)."""
    pkg = _kernel_package()
    kdir = None
    if pkg:
        kdir = os.path.join(CACHE, pkg)
    else:
        cached = sorted(glob.glob(os.path.join(CACHE, "linux-image-*", "vmlinuz")))
        if not cached:
            raise Fail("cannot resolve linux-image-amd64 (apt-cache) and nothing cached")
        kdir = os.path.dirname(cached[-1])
        log("apt-cache unavailable: using cached " + os.path.basename(kdir))
    vmlinuz = os.path.join(kdir, "vmlinuz")
    order_file = os.path.join(kdir, "modules.order")
    if not (os.path.exists(vmlinuz) and os.path.exists(order_file)):
        _fetch_kernel(pkg, kdir)
    with open(order_file) as f:
        order = f.read().split()
    return vmlinuz, os.path.join(kdir, "modules"), order


def _fetch_kernel(pkg, kdir):
    t0 = time.monotonic()
    os.makedirs(CACHE, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="tmp-", dir=CACHE)
    try:
        # the _apt sandbox user cannot write into a root-only temp dir
        os.chmod(tmp, 0o755)
        r = _run(["apt-get", "download", "-q", pkg], cwd=tmp, timeout=600)
        if r.returncode != 0:
            # stale package lists name a file the mirror no longer has
            log("apt-get download %s failed: apt-get update, then again" % pkg)
            _run(["apt-get", "update", "-q"], timeout=300)
            r = _run(["apt-get", "download", "-q", pkg], cwd=tmp, timeout=600)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if r.returncode != 0 or not debs:
            raise Fail("apt-get download %s failed: %s" % (pkg, r.stderr.strip()[-500:]))
        x = os.path.join(tmp, "x")
        r = _run(["dpkg-deb", "-x", debs[0], x])
        if r.returncode != 0:
            raise Fail("dpkg-deb -x failed: " + r.stderr.strip()[-500:])
        boot = glob.glob(os.path.join(x, "boot", "vmlinuz-*"))
        mods = glob.glob(os.path.join(x, "lib", "modules", "*", "kernel"))
        if not boot or not mods:
            raise Fail("%s holds no vmlinuz or modules" % pkg)
        # dependency order from each module's depends= (no depmod needed)
        order, seen = [], set()

        def visit(name, chain):
            if name in seen:
                return
            if name in chain:
                raise Fail("module dependency cycle at " + name)
            path = _find_ko(mods[0], name)
            if not path:
                raise Fail("module %s not in %s" % (name, pkg))
            for dep in _ko_depends(path):
                visit(dep, chain + [name])
            seen.add(name)
            order.append((name, path))

        for name in WANT_MODULES:
            visit(name, [])
        staging = os.path.join(tmp, "staging")
        os.makedirs(os.path.join(staging, "modules"))
        for name, path in order:
            # Debian 12 ships them uncompressed; busybox insmod takes plain .ko
            if not path.endswith(".ko"):
                raise Fail("compressed module %s: not supported" % path)
            shutil.copyfile(path, os.path.join(staging, "modules", name + ".ko"))
        shutil.copyfile(boot[0], os.path.join(staging, "vmlinuz"))
        cfg = glob.glob(os.path.join(x, "boot", "config-*"))
        if cfg:
            shutil.copyfile(cfg[0], os.path.join(staging, "config"))
        with open(os.path.join(staging, "modules.order"), "w") as f:
            f.write("\n".join(n for n, _ in order) + "\n")
        shutil.rmtree(kdir, ignore_errors=True)
        try:
            os.rename(staging, kdir)
        except OSError:
            # a concurrent run filled it first: use theirs
            if not os.path.exists(os.path.join(kdir, "modules.order")):
                raise
        # older kernels' caches are of no further use
        for old in glob.glob(os.path.join(CACHE, "linux-image-*")):
            if old != kdir:
                shutil.rmtree(old, ignore_errors=True)
        log("kernel %s unpacked into %s (%.1f s)" % (pkg, kdir, time.monotonic() - t0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# initramfs: a newc cpio written here (device nodes need no mknod on the host)


class Cpio:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.ino = 1
        self.names = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        nb = name.encode() + b"\x00"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0))
        self.ino += 1
        self.f.write(hdr.encode() + nb)
        self.f.write(b"\x00" * (-(110 + len(nb)) % 4))
        self.f.write(data)
        self.f.write(b"\x00" * (-len(data) % 4))

    def dir(self, name, mode=0o755):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | mode)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFREG | mode, data)

    def copy(self, name, src, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        self.file(name, data, mode if mode is not None else (os.stat(src).st_mode & 0o777))

    def symlink(self, name, target):
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def close(self):
        self._entry("TRAILER!!!", 0)
        self.f.write(b"\x00" * (-self.f.tell() % 512))
        self.f.close()


def _shared_libs(binary):
    """Every library ldd lists (resolved path) plus the loader."""
    r = _run(["ldd", binary])
    if r.returncode != 0:
        raise Fail("ldd %s: %s" % (binary, r.stderr.strip()))
    libs = []
    for line in r.stdout.splitlines():
        line = line.strip()
        m = re.match(r"\S+ => (/\S+) \(", line) or re.match(r"(/\S+) \(", line)
        if m:
            libs.append(m.group(1))
        elif "=> not found" in line:
            raise Fail("ldd %s: %s" % (binary, line))
    return libs


def build_initramfs(out, rund, modules_dir, module_order, tls, port, extra=()):
    c = Cpio(out)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run",
              "data", "root", "etc/runrpc/tls", "lib/modules"):
        c.dir(d)
    c.dir("tmp", 0o1777)
    # the kernel opens /dev/console for /init before devtmpfs is mounted
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.copy("bin/busybox", BUSYBOX, 0o755)
    applets = _run([BUSYBOX, "--list-full"]).stdout.split()
    for a in applets:
        if os.path.basename(a) != "busybox":
            c.symlink(a, "/bin/busybox")
    c.copy("bin/rund", rund, 0o755)
    # rund-waiter (static), where rund looks for it: ../libexec/runrpc/
    for rel in ("../libexec/runrpc/rund-waiter", "../waiter/rund-waiter"):
        waiter = os.path.join(os.path.dirname(rund), rel)
        if os.access(waiter, os.X_OK):
            c.dir("libexec")
            c.dir("libexec/runrpc")
            c.copy("libexec/runrpc/rund-waiter", waiter, 0o755)
            break
    else:
        raise Fail("rund-waiter not found next to %s" % rund)
    libdirs, copied = [], set()
    for binary in [rund] + list(extra):
        if binary != rund:
            c.copy("bin/" + os.path.basename(binary), binary, 0o755)
        for lib in _shared_libs(binary):
            if lib in copied:
                continue
            copied.add(lib)
            c.copy(lib, os.path.realpath(lib), 0o755)
            if os.path.dirname(lib) not in libdirs:
                libdirs.append(os.path.dirname(lib))
    for name in module_order:
        c.copy("lib/modules/%s.ko" % name, os.path.join(modules_dir, name + ".ko"), 0o644)
    for name in ("server.pem", "server.key", "ca.pem"):
        c.copy("etc/runrpc/tls/" + name, os.path.join(tls, name), 0o600)
    c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
           b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    c.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    c.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files\n")
    c.file("etc/hosts", b"127.0.0.1 localhost\n")
    env = ["export LD_LIBRARY_PATH=%s" % ":".join(libdirs)]
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if os.environ.get(k):
            env.append("export %s='%s'" % (k, os.environ[k].replace("'", "")))
    c.file("etc/rund.env", ("\n".join(env) + "\n").encode())
    with open(os.path.join(HERE, "init.sh")) as f:
        init = f.read()
    init = (init.replace("@MODULES@", " ".join(module_order))
            .replace("@PORT@", str(port))
            .replace("@LOGLEVEL@", os.environ.get("RUNRPC_VM_LOG_LEVEL", "info")))
    if re.search(r"@[A-Z]+@", init.split("\n", 2)[2]):
        raise Fail("init.sh has an unfilled @VAR@")
    c.file("init", init.encode(), 0o755)
    c.close()


# --------------------------------------------------------------------------
# the VM


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def tail(text, n=60):
    return "\n".join("  | " + line for line in text.splitlines()[-n:])


class Vm:
    def __init__(self, work, vmlinuz, initrd, disk, append=""):
        self.work = work
        self.append = append  # more kernel command line (run_shim.py: runrpc.init=1)
        self.console = os.path.join(work, "console.log")
        self.vmlinuz, self.initrd, self.disk = vmlinuz, initrd, disk
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-kernel", self.vmlinuz, "-initrd", self.initrd,
               "-append", ("console=ttyS0 quiet panic=-1 cgroup_no_v1=all " + self.append).strip(),
               "-serial", "file:" + self.console,
               "-drive", "file=%s,if=virtio,format=raw,cache=unsafe" % self.disk,
               # restrict=on: the guest reaches nothing outside; only the
               # forwarded port on the host's loopback reaches it
               "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:%d"
               % (self.port, GUEST_PORT),
               "-device", "virtio-net-pci,netdev=n0"]
        self.qemu_err = open(os.path.join(self.work, "qemu.stderr"), "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.qemu_err,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, pattern, timeout):
        """Waits for pattern in the console log; returns the match or None."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            text = read_text(self.console)
            m = rx.search(text)
            if m:
                return m
            if self.proc.poll() is not None:
                return rx.search(read_text(self.console))
            time.sleep(0.1)
        return None

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            # only the qemu we started, by its pid
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        if self.proc:
            self.qemu_err.close()


def runctl_env(port, tls):
    env = dict(os.environ)
    env.update({
        "RUNRPC_TARGET_ADDR": "127.0.0.1:%d" % port,
        "RUNRPC_TARGET_CERT": os.path.join(tls, "client.pem"),
        "RUNRPC_TARGET_KEY": os.path.join(tls, "client.key"),
        "RUNRPC_TARGET_CA": os.path.join(tls, "ca.pem"),
        "RUNRPC_TARGET_IO_FILE": "/data/io/testfile",
        "RUNRPC_TARGET_CGROUP": "v2",
        "RUND": RUND, "RUNCTL": RUNCTL,
        "RUNRPC_SOURCE_ROOT": ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def runctl(env, *args, timeout=60):
    cmd = [RUNCTL, "--addr", env["RUNRPC_TARGET_ADDR"], "--tls-cert", env["RUNRPC_TARGET_CERT"],
           "--tls-key", env["RUNRPC_TARGET_KEY"], "--ca", env["RUNRPC_TARGET_CA"],
           "--no-session-cache"] + list(args)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)


def main(argv):
    t_start = time.monotonic()
    for b in (RUND, RUNCTL):
        if not os.access(b, os.X_OK):
            log("FAIL: %s not built (make build, or set RUND/RUNCTL)" % b)
            return 2
    for tool in ("qemu-system-x86_64", "mkfs.ext4", "apt-get", "dpkg-deb", "ldd"):
        if not shutil.which(tool):
            log("FAIL: %s not found (./scripts/deps.sh vm installs what the VM needs)" % tool)
            return 2
    # the initramfs has no libc for busybox: it must be the static one
    if not os.access(BUSYBOX, os.X_OK) or _run(["ldd", BUSYBOX]).returncode == 0:
        log("FAIL: static %s missing (package busybox-static)" % BUSYBOX)
        return 2

    # SIGTERM (test.sh's timeout, CI) unwinds like Ctrl-C, so qemu is killed
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    keep = os.environ.get("RUNRPC_VM_KEEP") == "1"
    work = tempfile.mkdtemp(prefix="runrpc-vm-")
    ok = False
    try:
        rc = _main(work, argv, t_start)
        ok = rc == 0
        return rc
    except Fail as e:
        log("FAIL: " + str(e))
        return 2
    finally:
        if keep or not ok:
            log("work dir kept: %s (console.log, qemu.stderr, initrd.cpio)" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(env, n):
    """startwait inside the VM (a job of rund, talking to its unix socket)."""
    res = {}
    for mode, args in (("local", ["local", str(n)]),
                       ("plain", ["remote", "unix:/run/rund.sock", str(n)]),
                       ("limits", ["limits", "unix:/run/rund.sock", str(n)])):
        r = runctl(env, "exec", "--", "/bin/startwait", *args, timeout=600)
        m = re.search(rb"per_op_us=([0-9.]+)", r.stdout)
        if r.returncode != 0 or not m:
            raise Fail("startwait %s in the VM: exit %d: %s" % (
                mode, r.returncode, (r.stderr or r.stdout).decode(errors="replace").strip()))
        res[mode] = float(m.group(1))
    script = os.environ.get("RUNRPC_VM_BENCH_SCRIPT")  # a sh script to time by hand
    if script:
        r = runctl(env, "exec", "--", "/bin/sh", "-c", script, timeout=600)
        log("script: exit %d\n%s%s" % (r.returncode, r.stdout.decode(errors="replace"),
                                        r.stderr.decode(errors="replace")))
    if os.environ.get("RUNRPC_VM_BENCH_EACH") == "1":  # what each limit costs alone
        for only in ("cpu", "memory", "pids", "io"):
            r = runctl(env, "exec", "--env", "STARTWAIT_ONLY=" + only, "--", "/bin/startwait",
                       "limits", "unix:/run/rund.sock", str(n), timeout=600)
            m = re.search(rb"per_op_us=([0-9.]+)", r.stdout)
            log("only %s: %s us" % (only, m.group(1).decode() if m else r.stderr.decode()))
    print("vm-bench: local_us=%.1f plain_us=%.1f limits_us=%.1f"
          % (res["local"], res["plain"], res["limits"]), flush=True)


def _main(work, argv, t_start):
    bench_n = bench_rp = None
    if argv[:1] == ["--bench-runproc"]:  # runproc vs crun and runc (bench_runproc.py)
        if len(argv) != 2 or not argv[1].isdigit():
            raise Fail("usage: run.py --bench-runproc N")
        bench_rp, argv = int(argv[1]), []
    if argv[:1] == ["--bench"]:
        if len(argv) != 2 or not argv[1].isdigit():
            raise Fail("usage: run.py --bench N")
        bench_n, argv = int(argv[1]), []
        if not os.access(STARTWAIT, os.X_OK):
            raise Fail("%s not built (make build, or set STARTWAIT)" % STARTWAIT)
    vmlinuz, modules_dir, order = ensure_kernel()
    tls_state = os.path.join(work, "state")
    r = _run([RUND, "certs", "init", "--state-dir", tls_state], timeout=60)
    if r.returncode != 0:
        raise Fail("rund certs init: " + (r.stderr or r.stdout).strip()[-500:])
    tls = os.path.join(tls_state, "tls")
    initrd = os.path.join(work, "initrd.cpio")
    extra = [STARTWAIT] if bench_n else []
    if os.access(RUNPROC, os.X_OK):
        extra.append(RUNPROC)
    others = [b for b in ("/usr/bin/crun", "/usr/sbin/runc") if os.access(b, os.X_OK)]
    extra += others if bench_rp else []
    build_initramfs(initrd, RUND, modules_dir, order, tls, GUEST_PORT, extra)
    disk = os.path.join(work, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(512 * 1024 * 1024)
    # initialise inode tables and journal now, so the guest does no
    # background writes that would disturb the io measurements
    r = _run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", disk])
    if r.returncode != 0:
        raise Fail("mkfs.ext4: " + r.stderr.strip())
    log("initramfs %.1f MiB (%s, busybox, rund + %d libs, %d modules); booting %s"
        % (os.path.getsize(initrd) / 2**20, os.path.basename(RUND),
           len(_shared_libs(RUND)), len(order), os.path.basename(os.path.dirname(vmlinuz))))

    vms = []
    try:
        for attempt in range(2):
            vm = Vm(work, vmlinuz, initrd, disk)
            vms.append(vm)
            vm.start()
            m = vm.wait_for(r"RUNRPC-VM-READY|RUNRPC-VM-FAIL[^\n]*|Kernel panic[^\n]*",
                            BOOT_TIMEOUT)
            if m is None and vm.proc.poll() is not None and attempt == 0 and \
                    "hostfwd" in read_text(os.path.join(work, "qemu.stderr")):
                log("port %d taken between probe and bind: retrying" % vm.port)
                continue
            break
        boot_s = time.monotonic() - vm.t0
        if m is None or not m.group(0).startswith("RUNRPC-VM-READY"):
            why = m.group(0) if m else ("qemu exited (%s)" % vm.proc.returncode
                                        if vm.proc.poll() is not None
                                        else "no ready marker after %.0f s" % BOOT_TIMEOUT)
            log("FAIL: VM did not come up: %s" % why)
            log("qemu stderr:\n" + tail(read_text(os.path.join(work, "qemu.stderr")), 20))
            log("console (last lines):\n" + tail(read_text(vm.console)))
            return 2
        log("VM up in %.1f s; rund in the VM on 127.0.0.1:%d (TLS)" % (boot_s, vm.port))
        info = re.search(r"RUNRPC-VM: kernel [^\n]*", read_text(vm.console))
        if info:
            log(info.group(0)[len("RUNRPC-VM: "):])

        env = runctl_env(vm.port, tls)
        if bench_rp:
            from bench_runproc import bench_runproc
            try:
                bench_runproc(runctl, env, bench_rp, 3,
                              ["runproc"] + [os.path.basename(b) for b in others])
            finally:
                runctl(env, "exec", "--", "/bin/touch", "/run/rund.stop", timeout=60)
                vm.wait_exit(SHUTDOWN_TIMEOUT)
            return 0
        if bench_n:
            try:
                _bench(env, bench_n)
            finally:
                runctl(env, "exec", "--", "/bin/touch", "/run/rund.stop", timeout=60)
                vm.wait_exit(SHUTDOWN_TIMEOUT)
            return 0
        tests = [t for t in TESTS if os.path.exists(os.path.join(ROOT, t))]
        missing = [t for t in TESTS if t not in tests]
        for t in missing:
            log("WARNING: %s not found: not run" % t)
        t_py = time.monotonic()
        cmd = ["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfEs",
               "--durations=10"] + tests + argv
        log("running: " + " ".join(cmd[2:]))
        try:
            pr = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                timeout=PYTEST_TIMEOUT)
            py_rc = pr.returncode
        except subprocess.TimeoutExpired:
            log("FAIL: pytest did not finish in %.0f s" % PYTEST_TIMEOUT)
            py_rc = -1
        py_s = time.monotonic() - t_py

        # orderly shutdown: a job asks /init to SIGTERM rund; /init then
        # lists leftover cgroups and powers off
        t_down = time.monotonic()
        down = runctl(env, "exec", "--", "/bin/touch", "/run/rund.stop", timeout=60)
        if down.returncode != 0:
            log("runctl exec (shutdown request) failed: %s"
                % down.stderr.decode(errors="replace").strip())
        done = vm.wait_exit(SHUTDOWN_TIMEOUT)
        console = read_text(vm.console)
    finally:
        for v in vms:
            v.kill()

    checks = []
    checks.append(("pytest (%s)" % ", ".join(os.path.basename(t) for t in tests),
                   py_rc == 0, "exit %s, %.1f s" % (py_rc, py_s)))
    ex = re.search(r"RUNRPC-VM-RUND-EXIT (\d+)", console)
    checks.append(("rund exits cleanly on SIGTERM", bool(ex) and ex.group(1) == "0",
                   "status %s" % (ex.group(1) if ex else "unknown (no marker)")))
    left = re.findall(r"RUNRPC-VM-LEFTOVER-CGROUP (\S+) procs=(\d+)", console)
    busy_dirs = [d for d, n in left if n != "0"]
    # an empty cgroup above a busy one is still needed by it
    empty = [d for d, n in left if n == "0"
             and not any(b.startswith(d + "/") for b in busy_dirs)]
    busy = ["%s (%s procs)" % (d, n) for d, n in left if n != "0"]
    if busy:
        log("jobs still running when rund stopped (kept for adoption): " + ", ".join(busy))
    checks.append(("no empty cgroups left after rund exits", bool(ex) and not empty,
                   ", ".join(empty) if empty else ("none" if ex else "not checked")))
    checks.append(("VM powered off", done and "RUNRPC-VM-DONE" in console,
                   "%.1f s" % (time.monotonic() - t_down) if done else "killed"))
    san = [line for line in console.splitlines() if SANITIZER_RE.search(line)]
    checks.append(("no sanitizer report from rund in the VM", not san,
                   san[0].strip() if san else "clean"))
    failed = [c for c in checks if not c[1]]
    if failed:
        log("console (last lines):\n" + tail(console, 80))
    print("== VM summary (boot %.1f s, total %.1f s)" % (boot_s, time.monotonic() - t_start))
    for name, good, detail in checks:
        print("  %-4s %s: %s" % ("ok" if good else "FAIL", name, detail))
    print("test-vm: %s" % ("PASSED" if not failed else "FAILED (%d of %d checks)"
                           % (len(failed), len(checks))), flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
