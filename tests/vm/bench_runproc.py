"""`run.py --bench-runproc N`: runproc vs crun and runc on cgroup v2, inside
the VM (TCG: slow, but the three are timed in the same VM, rounds
alternated). A job of rund makes a busybox bundle and times N runs of
/bin/true with each runtime (all three with the same absolute cgroupsPath,
made and removed by each run), by /proc/uptime (10 ms ticks over N runs).
Prints the median ms per run of each and the ratios."""
import json
import re
import statistics

CONFIG = {
    "ociVersion": "1.0.2",
    "process": {"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"],
                "user": {"uid": 0, "gid": 0}},
    "root": {"path": "rootfs"},
    "hostname": "b",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "cgroup")],
              "cgroupsPath": "/rp-bench/c"},
}

SCRIPT = r"""
. /etc/rund.env
B=/tmp/rpbench
rm -rf $B; mkdir -p $B/rootfs/bin $B/rootfs/proc $B/rootfs/dev $B/rootfs/sys $B/rootfs/tmp
cp /bin/busybox $B/rootfs/bin/ && ln -s busybox $B/rootfs/bin/true
cat >$B/config.json <<'CONFIG_EOF'
%(config)s
CONFIG_EOF
one() {
  name=$1; shift
  read a _ </proc/uptime
  i=0
  while [ $i -lt %(n)d ]; do
    "$@" run -b $B x$i >/dev/null 2>/tmp/rpbench.err || { echo "FAIL $name"; cat /tmp/rpbench.err; }
    i=$((i + 1))
  done
  read b _ </proc/uptime
  echo "T $name $a $b"
}
r=0
while [ $r -lt %(rounds)d ]; do
  for rt in %(order)s; do
    case $rt in
    runproc) one runproc /bin/runproc --root /run/b-runproc ;;
    crun) one crun /bin/crun --root /run/b-crun ;;
    runc) one runc /bin/runc --root /run/b-runc ;;
    esac
  done
  r=$((r + 1))
done
rmdir /sys/fs/cgroup/rp-bench
rm -rf $B /run/b-runproc /run/b-crun /run/b-runc
"""


def bench_runproc(runctl, env, n, rounds, runtimes):
    """runtimes: those of runproc, crun, runc that are in the VM."""
    script = SCRIPT % {"config": json.dumps(CONFIG), "n": n, "rounds": rounds,
                       "order": " ".join(runtimes)}
    r = runctl(env, "exec", "--", "/bin/sh", "-c", script, timeout=3600)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if "FAIL" in out or r.returncode != 0:
        raise RuntimeError("bench in the VM failed (exit %d):\n%s" % (r.returncode, out[-3000:]))
    res = {}
    for name, a, b in re.findall(r"^T (\S+) ([\d.]+) ([\d.]+)$", out, re.M):
        res.setdefault(name, []).append((float(b) - float(a)) * 1000 / n)
    med = {k: statistics.median(v) for k, v in res.items()}
    print("vm-bench-runproc (cgroup v2, TCG; ms per run of /bin/true, median of %d rounds "
          "of %d):" % (rounds, n))
    for k in runtimes:
        print("  %-8s %8.1f  (rounds: %s)" % (k, med[k], ", ".join("%.1f" % x for x in res[k])))
    for other in ("crun", "runc"):
        if other in med:
            print("  runproc / %s = %.3fx" % (other, med["runproc"] / med[other]))
    return med
