"""The per-job log cap: the oldest bytes go, the newest stay, readers are told
how many were dropped, and offsets stay absolute (also across a restart)."""
import hashlib

import pytest

from conftest import Ctl, pb

CAP = 64 * 1024
TOTAL = 4 * 1024 * 1024
# 4 MiB of a counter pattern on stdout, a short marker on stderr
SCRIPT = ("import sys\n"
          "b = bytes(i % 251 for i in range(1 << 20))\n"
          "for _ in range(4): sys.stdout.buffer.write(b); sys.stdout.flush()\n"
          "sys.stderr.write('tail-marker\\n')\n")


def expected_tail(n):
    b = bytes(i % 251 for i in range(1 << 20)) * 4
    return b[len(b) - n:]


def start_and_wait(stub):
    req = pb.StartRequest(command=pb.Command(path="python3", args=["-c", SCRIPT]))
    job = stub.Start(req, timeout=10).job_id
    st = stub.Wait(pb.WaitRequest(job_id=job), timeout=60).status
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    return job, st


def read_stdout(stub, job, offset=0):
    chunks = list(stub.Logs(pb.LogsRequest(job_id=job, stream=pb.STREAM_STDOUT,
                                           stdout_offset=offset), timeout=30))
    return chunks


@pytest.fixture
def capped(rund_factory):
    return rund_factory(extra_args=["--max-log-bytes", "64K"]).start()


def test_cap_keeps_the_newest_bytes_and_reports_the_dropped(capped):
    stub = capped.stub()
    job, st = start_and_wait(stub)
    assert st.stdout_bytes == TOTAL
    chunks = read_stdout(stub, job)
    dropped = sum(c.dropped for c in chunks)
    data = b"".join(c.data for c in chunks)
    assert chunks[0].dropped > 0 and chunks[0].offset == dropped
    assert dropped + len(data) == TOTAL  # nothing lost but what was reported
    assert CAP <= len(data) < CAP + 4096 + 1  # block-aligned punching
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected_tail(len(data))).digest()
    # offsets are absolute: asking for the last 10 bytes gives them
    last = read_stdout(stub, job, offset=TOTAL - 10)
    assert b"".join(c.data for c in last) == expected_tail(10)
    assert all(c.dropped == 0 for c in last)


def test_cap_survives_restart_and_runctl_says_so(capped):
    stub = capped.stub()
    job, _ = start_and_wait(stub)
    capped.stop()
    capped.start()
    chunks = read_stdout(capped.stub(), job)
    assert sum(c.dropped for c in chunks) + sum(len(c.data) for c in chunks) == TOTAL
    r = Ctl(capped.addr)("logs", job)
    assert r.rc == 0, r
    assert r.err.startswith(b"runctl: logs: ") and b"dropped by the log size cap" in r.err
    assert r.err.endswith(b"tail-marker\n")
    assert r.out == expected_tail(len(r.out))
