#!/bin/sh
# /init of the test VM (tests/vm/run.py fills in the @NAME@ placeholders).
# Stage 1 (initramfs): load the virtio and ext4 modules, copy this initramfs
# onto the ext4 disk /dev/vda and switch_root to it, so that / (and every job's
# default workdir) sits on a real block device, as on a real machine.
# Stage 2 (on the disk): mount cgroup2 alone, bring up eth0, start rund in
# a cgroup of its own (rund.service) and print the markers the host waits for. When rund exits,
# report leftover cgroups and power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

fail() {
  echo "RUNRPC-VM-FAIL $*"
  sync
  poweroff -f
}

if [ "${1:-}" != stage2 ]; then
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  # dependencies first (run.py orders the list)
  for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || echo "RUNRPC-VM: insmod $m failed"
  done
  # virtio probing is asynchronous: wait (bounded) for the disk and the NIC
  i=0
  while [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    [ $i -gt 200 ] && fail "no /dev/vda or eth0 after 20 s"
    sleep 0.1
  done
  mkdir -p /newroot
  mount -t ext4 /dev/vda /newroot || fail "mount /dev/vda"
  for d in bin sbin usr lib lib64 libexec etc root init; do
    [ -e "/$d" ] && { cp -a "/$d" /newroot/ || fail "copy /$d to the disk"; }
  done
  for d in proc sys dev run tmp data; do mkdir -p "/newroot/$d"; done
  chmod 1777 /newroot/tmp
  umount /proc /sys /dev
  exec switch_root /newroot /init stage2
  fail "switch_root"
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
# the unified hierarchy only (the kernel also gets cgroup_no_v1=all)
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup || fail "mount cgroup2"
mkdir -p /data/state /data/io

ifconfig lo 127.0.0.1 up
# user-mode networking: the host's forwarded connections come from 10.0.2.2
# on this /24, so no default route is needed (nothing here talks outward)
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up || fail "ifconfig eth0"

echo "RUNRPC-VM: kernel $(uname -r); cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

[ -f /etc/rund.env ] && . /etc/rund.env

# tests/vm/run_shim.py: runrpc becomes PID 1 (the exec keeps this shell's
# pid) and serves TLS on the forwarded port; it never exits, the host ends
# the VM with a `poweroff -f` run through it
if grep -q 'runrpc.init=1' /proc/cmdline; then
  echo "RUNRPC-VM: exec runrpc as PID 1"
  exec /bin/runrpc --listen 0.0.0.0:@PORT@ --listen unix:/run/runrpc.sock \
    --tls-cert /etc/runrpc/tls/server.pem --tls-key /etc/runrpc/tls/server.key \
    --client-ca /etc/runrpc/tls/ca.pem </dev/null
  fail "exec runrpc"
fi
# rund starts in a cgroup of its own below the root, as systemd runs a service
# with Delegate=yes (controllers enabled for it in the parent): rund moves
# itself into a leaf of its subtree there and enables the controllers below
echo "+cpu +memory +io +pids" >/sys/fs/cgroup/cgroup.subtree_control ||
  fail "enable controllers in the root cgroup"
mkdir /sys/fs/cgroup/rund.service || fail "mkdir rund.service"
# rund's stdout/stderr go to the serial console, which the host keeps
(echo 0 >/sys/fs/cgroup/rund.service/cgroup.procs && exec /bin/rund \
  --listen 0.0.0.0:@PORT@ --listen unix:/run/rund.sock \
  --tls-cert /etc/runrpc/tls/server.pem --tls-key /etc/runrpc/tls/server.key \
  --client-ca /etc/runrpc/tls/ca.pem --admin san:uri:runrpc:admin \
  --state-dir /data/state --log-level @LOGLEVEL@ </dev/null) &
rund_pid=$!
echo $rund_pid >/run/rund.pid

# ready once the TLS port is listening (state 0A in /proc/net/tcp)
port_hex=$(printf '%04X' @PORT@)
i=0
until grep -q ":$port_hex [0-9A-F:]* 0A" /proc/net/tcp; do
  i=$((i + 1))
  if ! kill -0 $rund_pid 2>/dev/null; then
    wait $rund_pid
    fail "rund exited with status $? before listening"
  fi
  [ $i -gt 600 ] && fail "rund not listening after 60 s"
  sleep 0.1
done
echo "RUNRPC-VM-READY pid=$rund_pid"

# the host asks for shutdown by a job that creates /run/rund.stop (that job
# has ended by then, so no job of the host's is running when rund stops)
while kill -0 $rund_pid 2>/dev/null && [ ! -e /run/rund.stop ]; do
  sleep 0.2
done
kill -TERM $rund_pid 2>/dev/null
wait $rund_pid
rc=$?
echo "RUNRPC-VM-RUND-EXIT $rc"
# rund.service is ours; what rund left inside it shows below
rmdir /sys/fs/cgroup/rund.service 2>/dev/null
# rund must leave nothing behind in the hierarchy when it shuts down
# (procs>0: a job still running, left for the next rund to adopt)
find /sys/fs/cgroup -mindepth 1 -type d | while read -r d; do
  echo "RUNRPC-VM-LEFTOVER-CGROUP ${d#/sys/fs/cgroup/} procs=$(wc -l <"$d/cgroup.procs")"
done
echo "RUNRPC-VM-DONE"
sync
poweroff -f
