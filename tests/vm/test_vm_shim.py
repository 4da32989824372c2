"""runrpc as PID 1 of the VM (tests/vm/run_shim.py boots it), reached over
TLS with a client certificate through the forwarded port: it is PID 1,
reaps orphans, forwards signals to its children and stays up."""

import os
import sys
import time

import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from shim_helpers import cpb, cpb_grpc, rpb, rpb_grpc  # noqa: E402

ADDR = os.environ.get("RUNRPC_TARGET_ADDR")
pytestmark = pytest.mark.skipif(not ADDR, reason="run by tests/vm/run_shim.py")


def channel():
    rd = lambda k: open(os.environ[k], "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(rd("RUNRPC_TARGET_CA"), rd("RUNRPC_TARGET_KEY"),
                                         rd("RUNRPC_TARGET_CERT"))
    return grpc.secure_channel(ADDR, creds, options=[("grpc.ssl_target_name_override",
                                                      "localhost")])


def sh(ch, script, timeout=60):
    out, ex = b"", None
    for m in cpb_grpc.CommanderStub(ch).Shell(iter([cpb.Command(shell=script)]), timeout=timeout):
        if m.WhichOneof("kind") == "stdout":
            out += m.stdout
        elif m.WhichOneof("kind") == "exit":
            ex = m.exit
    return out.decode(), ex


def poweroff():
    ch = channel()
    try:
        sh(ch, "sync; poweroff -f", timeout=20)
    except grpc.RpcError:
        pass  # the VM went away under the call


@pytest.fixture(scope="module")
def ch():
    c = channel()
    yield c
    c.close()


def test_runrpc_is_pid_1(ch):
    info = rpb_grpc.RunnerStub(ch).Info(rpb.InfoRequest(), timeout=60)
    assert (info.pid, info.depth) == (1, 0)
    out, ex = sh(ch, "cat /proc/1/comm; echo $PPID")
    assert out.split() == ["runrpc", "1"] and ex.code == 0


ZOMBIES = "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done | awk '$3 == \"Z\"' | wc -l"


def test_orphans_are_reaped(ch):
    # not holding the Shell's pipes, so that the call ends with sh
    out, _ = sh(ch, "for i in 1 2; do sleep 3 </dev/null >/dev/null 2>&1 & done; echo $!; exit 0")
    orphan = int(out)
    out, _ = sh(ch, "cut -d' ' -f4 /proc/%d/stat" % orphan)
    assert out.strip() == "1"  # re-parented to runrpc, PID 1
    time.sleep(4)
    out, _ = sh(ch, "test -e /proc/%d && echo alive; %s" % (orphan, ZOMBIES))
    assert out.split() == ["0"]  # gone, and no zombie anywhere


def test_signals_are_forwarded_and_init_stays(ch):
    runner = rpb_grpc.RunnerStub(ch)
    r = runner.Spawn(rpb.SpawnRequest(argv=[
        "sh", "-c", "trap 'echo usr1 >> /tmp/got' USR1; trap 'echo term >> /tmp/got; exit 0' "
        "TERM; while :; do sleep 0.1; done"]), timeout=60)
    time.sleep(1)
    sh(ch, "kill -USR1 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out, _ = sh(ch, "cat /tmp/got 2>/dev/null")
        if "usr1" in out:
            break
        time.sleep(0.3)
    assert out == "usr1\n"
    sh(ch, "kill -TERM 1")
    st = runner.Wait(rpb.WaitRequest(handle=r.handle), timeout=60)
    assert st.code == 0
    out, _ = sh(ch, "cat /tmp/got")
    assert out == "usr1\nterm\n"
    assert rpb_grpc.RunnerStub(ch).Info(rpb.InfoRequest(), timeout=60).pid == 1
