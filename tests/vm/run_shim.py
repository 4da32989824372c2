#!/usr/bin/python3
"""runrpc as the init (PID 1) of the qemu VM of tests/vm (run.py's kernel,
initramfs and /init; the kernel command line's runrpc.init=1 makes /init
exec runrpc in its own place): runrpc serves TLS with client certificates
on the forwarded port, and tests/vm/test_vm_shim.py checks from the host
that it is PID 1, reaps orphans, forwards signals and stays up. The VM is
then powered off through runrpc itself (Commander.Shell `poweroff -f`).

    RUND=... RUNRPC=... /usr/bin/python3 tests/vm/run_shim.py [pytest args]

Exit 0 when every check passed, 1 when one failed, 2 when the VM did not
come up.
"""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as vm  # noqa: E402

RUNRPC = os.environ.get("RUNRPC") or os.path.join(os.path.dirname(vm.RUND), "runrpc")


def poweroff(env):
    """Commander.Shell `poweroff -f` through runrpc (the connection dies
    with the VM: any error is fine)."""
    code = ("import sys; sys.path[:0] = [%r, %r]\n"
            "import test_vm_shim as t\n"
            "t.poweroff()\n" % (HERE, os.path.join(vm.ROOT, "tests", "integration")))
    subprocess.run(["/usr/bin/python3", "-c", code], env=env, timeout=60,
                   stdin=subprocess.DEVNULL)


def main(argv):
    if not os.access(RUNRPC, os.X_OK):
        vm.log("FAIL: %s not built (set RUNRPC or RUND)" % RUNRPC)
        return 2
    with tempfile.TemporaryDirectory(prefix="runrpc-vmshim-", dir="/tmp") as work:
        vmlinuz, modules_dir, order = vm.ensure_kernel()
        tls_state = os.path.join(work, "state")
        r = vm._run([vm.RUND, "certs", "init", "--state-dir", tls_state], timeout=60)
        if r.returncode != 0:
            vm.log("FAIL: rund certs init: " + (r.stderr or r.stdout).strip()[-500:])
            return 2
        tls = os.path.join(tls_state, "tls")
        initrd = os.path.join(work, "initrd.cpio")
        vm.build_initramfs(initrd, vm.RUND, modules_dir, order, tls, vm.GUEST_PORT, [RUNRPC])
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(256 * 1024 * 1024)
        r = vm._run(["mkfs.ext4", "-q", "-F", disk])
        if r.returncode != 0:
            vm.log("FAIL: mkfs.ext4: " + r.stderr.strip())
            return 2
        v = vm.Vm(work, vmlinuz, initrd, disk, append="runrpc.init=1")
        try:
            v.start()
            m = v.wait_for(r'msg="listening" addr="0\.0\.0\.0:%d"|RUNRPC-VM-FAIL[^\n]*|'
                           r'Kernel panic[^\n]*' % vm.GUEST_PORT, vm.BOOT_TIMEOUT)
            if m is None or "listening" not in m.group(0):
                vm.log("FAIL: runrpc did not come up as PID 1: %s"
                       % (m.group(0) if m else "no listening line"))
                vm.log("console:\n" + vm.tail(vm.read_text(v.console)))
                return 2
            vm.log("VM up in %.1f s; runrpc is its init, on 127.0.0.1:%d (TLS)"
                   % (time.monotonic() - v.t0, v.port))
            env = vm.runctl_env(v.port, tls)
            env["RUNRPC"] = RUNRPC
            cmd = ["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfEs",
                   os.path.join(HERE, "test_vm_shim.py")] + argv
            py_rc = subprocess.run(cmd, cwd=vm.ROOT, env=env, stdin=subprocess.DEVNULL,
                                   timeout=vm.PYTEST_TIMEOUT).returncode
            poweroff(env)
            off = v.wait_exit(vm.SHUTDOWN_TIMEOUT)
            console = vm.read_text(v.console)
        finally:
            v.kill()
    san = [line for line in console.splitlines() if vm.SANITIZER_RE.search(line)]
    checks = [("pytest (test_vm_shim.py)", py_rc == 0, "exit %d" % py_rc),
              ("VM powered off through runrpc", off, "ok" if off else "killed"),
              ("no sanitizer report in the VM", not san, san[0] if san else "clean")]
    if not all(c[1] for c in checks):
        vm.log("console (last lines):\n" + vm.tail(console, 80))
    for name, good, detail in checks:
        print("  %-4s %s: %s" % ("ok" if good else "FAIL", name, detail))
    ok = all(c[1] for c in checks)
    print("test-vm-shim: %s" % ("PASSED" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
