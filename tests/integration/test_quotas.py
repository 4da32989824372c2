"""Per-identity quotas (rund --quota-running, --quota-jobs, --quota-followers)
and the global fd reserve (--fd-reserve): an unprivileged uid is refused with
RESOURCE_EXHAUSTED naming the quota, its principal and its count, while root
(an admin) is exempt; nobody, admin or not, eats the fds kept in reserve."""

import json
import os
import subprocess
import sys
import time

import grpc
import pytest

import conftest
from conftest import RUND, fd_count, pb, start, wait

NOBODY = "uid:65534"

# Runs as uid 65534: one client, a list of actions, one JSON result per action.
_NOBODY_CLIENT = r"""
import grpc, json, sys, time
sys.path.insert(0, sys.argv[1])
from runrpc.v1 import jobs_pb2 as pb, jobs_pb2_grpc as g
s = g.JobsStub(grpc.insecure_channel("unix:" + sys.argv[2]))
streams, out = {}, []
def err(e):
    return "%s:%s" % (e.code().name, e.details())
for a in json.loads(sys.argv[3]):
    try:
        if a[0] == "start":
            r = s.Start(pb.StartRequest(command=pb.Command(path=a[1], args=a[2:])), timeout=10)
            out.append(r.job_id)
        elif a[0] == "follow":  # open a Logs stream and read its first message
            it = s.Logs(pb.LogsRequest(job_id=a[1], follow=True), timeout=30)
            streams[len(streams)] = it
            out.append(next(it).data.decode())
        elif a[0] == "close":
            streams.pop(a[1]).cancel()
            out.append("closed")
        elif a[0] == "exec":  # one Exec: its stdout, or the error
            reqs = [pb.ExecRequest(start=pb.ExecStart(command=pb.Command(path=a[1], args=a[2:]))),
                    pb.ExecRequest(close_stdin=True)]
            out.append(b"".join(m.stdout for m in s.Exec(iter(reqs), timeout=30)).decode())
        elif a[0] == "list":
            out.append(sorted(j.job_id for j in s.List(pb.ListRequest(), timeout=10).jobs))
    except grpc.RpcError as e:
        out.append(err(e))
print(json.dumps(out))
"""


def as_nobody(rund, actions, timeout=60):
    stubdir = conftest._STUB_DIR
    for d, dirs, files in os.walk(stubdir):
        os.chmod(d, 0o755)
        for x in files:
            os.chmod(os.path.join(d, x), 0o644)
    os.chmod(rund.base, 0o711)  # let uid 65534 reach the socket
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        sys.executable, "-c", _NOBODY_CLIENT, stubdir, rund.sock,
                        json.dumps(actions)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def stop_all(stub):
    for j in stub.List(pb.ListRequest(state=pb.JOB_STATE_RUNNING), timeout=10).jobs:
        stub.Stop(pb.StopRequest(job_id=j.job_id, grace_ms=0), timeout=15)


def test_running_quota_refuses_the_uid_not_root(rund_factory):
    r = rund_factory(extra_args=["--quota-running", "3"]).start()
    root = r.stub()
    got = as_nobody(r, [["start", "sleep", "60"]] * 4)
    mine = got[:3]
    assert all(conftest.ULID_RE.match(x) for x in mine), got
    refused = got[3]
    assert refused.startswith("RESOURCE_EXHAUSTED:"), refused
    assert 'running-jobs quota of "uid:65534" reached: 3 of 3' in refused, refused
    assert "--quota-running" in refused, refused
    # an Exec is a running command too
    ex = as_nobody(r, [["exec", "/bin/echo", "hi"]])[0]
    assert 'RESOURCE_EXHAUSTED:running-jobs quota of "uid:65534" reached' in ex, ex
    # root is an admin: exempt from per-identity quotas
    for _ in range(4):
        start(root, "sleep", "60")
    assert "refused: quota reached" in r.stderr_text()
    # a job of its own that ends makes room again
    root.Stop(pb.StopRequest(job_id=mine[0], grace_ms=0), timeout=15)
    again = as_nobody(r, [["start", "sleep", "60"], ["start", "sleep", "60"]])
    assert conftest.ULID_RE.match(again[0]), again
    assert again[1].startswith("RESOURCE_EXHAUSTED:"), again
    # a restarted rund counts the jobs it adopts
    r.stop()
    r.start()
    root = r.stub()
    after = as_nobody(r, [["start", "sleep", "60"]])
    assert 'running-jobs quota of "uid:65534" reached: 3 of 3' in after[0], after
    stop_all(root)
    assert conftest.ULID_RE.match(as_nobody(r, [["start", "true"]])[0])
    assert as_nobody(r, [["exec", "/bin/echo", "hi"]]) == ["hi\n"]


def test_kept_jobs_quota_and_retention_make_room(rund_factory):
    r = rund_factory(extra_args=["--quota-jobs", "3", "--quota-running", "0",
                                 "--retention", "1s"]).start()
    root = r.stub()
    got = as_nobody(r, [["start", "true"]] * 4)
    assert all(conftest.ULID_RE.match(x) for x in got[:3]), got
    assert got[3].startswith("RESOURCE_EXHAUSTED:"), got
    assert 'kept-jobs quota of "uid:65534" reached: 3 of 3' in got[3], got
    assert "--retention" in got[3], got
    # finished ones leave with the retention, and their count with them
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if not root.List(pb.ListRequest(), timeout=10).jobs:
            break
        time.sleep(0.1)
    assert not root.List(pb.ListRequest(), timeout=10).jobs
    got = as_nobody(r, [["start", "true"]] * 2)
    assert all(conftest.ULID_RE.match(x) for x in got), got


def test_followers_quota(rund_factory):
    r = rund_factory(extra_args=["--quota-followers", "2"]).start()
    root = r.stub()
    job = as_nobody(r, [["start", "sh", "-c", "echo hi; sleep 60"]])[0]
    assert conftest.ULID_RE.match(job), job
    got = as_nobody(r, [["follow", job], ["follow", job], ["follow", job], ["close", 0],
                        ["follow", job]])
    assert got[:2] == ["hi\n", "hi\n"], got
    assert got[2].startswith("RESOURCE_EXHAUSTED:"), got
    assert 'followers quota of "uid:65534" reached: 2 of 2' in got[2], got
    # the closed stream's slot is free again (the RST_STREAM precedes the next call)
    assert got[4] == "hi\n", got
    # root (admin) is not limited
    its = [root.Logs(pb.LogsRequest(job_id=job, follow=True), timeout=30) for _ in range(4)]
    assert [next(it).data for it in its] == [b"hi\n"] * 4
    for it in its:
        it.cancel()
    # the nobody client exited: its streams are gone, it may follow again
    assert as_nobody(r, [["follow", job], ["follow", job]]) == ["hi\n", "hi\n"]
    root.Stop(pb.StopRequest(job_id=job, grace_ms=0), timeout=15)


def test_fd_reserve_refuses_everyone_and_logs(rund_factory):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    r = rund_factory().start()
    base = fd_count(r.pid)
    r.stop()
    # leave room for about 24 jobs beyond what an idle rund holds (a running
    # job holds one fd, its pidfd)
    r.extra_args = ["--fd-reserve", str(hard - base - 24)]
    r.start()
    root = r.stub()
    ids, refused = [], None
    for _ in range(100):
        try:
            ids.append(start(root, "sleep", "60").job_id)
        except grpc.RpcError as e:
            refused = e
            break
    assert refused is not None, "no refusal after %d jobs" % len(ids)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    assert "rund is low on file descriptors" in refused.details(), refused.details()
    assert 3 <= len(ids) <= 24, len(ids)
    assert 'msg="refused: file descriptors low"' in r.stderr_text()
    # rund keeps serving what needs no new fds
    assert len(root.List(pb.ListRequest(), timeout=10).jobs) == len(ids)
    assert root.Status(pb.StatusRequest(job_id=ids[0]), timeout=10).status.state == \
        pb.JOB_STATE_RUNNING
    # Logs streams hold fds too
    with pytest.raises(grpc.RpcError) as ei:
        list(root.Logs(pb.LogsRequest(job_id=ids[0]), timeout=10))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # once jobs end, starts work again (on kernels before 6.2 rund recounts
    # its fds at most every 50 ms near the reserve)
    for j in ids[:3]:
        root.Stop(pb.StopRequest(job_id=j, grace_ms=0), timeout=15)
    time.sleep(0.1)
    j = start(root, "true").job_id
    assert wait(root, j).state == pb.JOB_STATE_EXITED
    stop_all(root)


@pytest.mark.parametrize("args,want", [
    (["--quota-running", "x"], '--quota-running "x" is not a count'),
    (["--quota-jobs", "-1"], '--quota-jobs "-1" is not a count'),
    (["--quota-followers", "99999999999"], '--quota-followers "99999999999" is not a count'),
    (["--fd-reserve", "0"], '--fd-reserve "0" must be at least 1'),
])
def test_bad_quota_flags(args, want):
    p = subprocess.run([RUND] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2, p
    assert want in p.stderr.decode(), p.stderr


def test_fd_reserve_over_the_limit_is_refused_at_start(rund_factory):
    r = rund_factory(extra_args=["--fd-reserve", "1000000000"])
    r.start(wait=False)
    assert r.proc.wait(30) == 1
    text = r.stderr_text()
    assert "fd reserve 1000000000 leaves fewer than 32" in text, text
    r.proc = None
