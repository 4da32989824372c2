"""rund --retention DUR: finished jobs are deleted (status, logs, files) DUR
after they ended; running ones never; without the flag they are kept."""

import os
import subprocess
import time

import grpc
import pytest

from conftest import RUND, pb, start, wait


def status_code(stub, job_id):
    try:
        stub.Status(pb.StatusRequest(job_id=job_id), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def wait_gone(stub, job_id, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if status_code(stub, job_id) == grpc.StatusCode.NOT_FOUND:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("job %s still there after %.1f s" % (job_id, timeout))


def test_finished_jobs_are_deleted_after_the_retention(rund_factory):
    r = rund_factory(extra_args=["--retention", "1s"]).start()
    stub = r.stub()
    done = start(stub, "/bin/sh", "-c", "echo out; echo err >&2").job_id
    ended = time.monotonic()
    assert wait(stub, done).state == pb.JOB_STATE_EXITED
    running = start(stub, "/bin/sleep", "2.5").job_id
    jobdir = os.path.join(r.state, "jobs", done)
    assert os.path.isdir(jobdir)
    # still there within the retention, gone after it (and never early)
    assert status_code(stub, done) == grpc.StatusCode.OK
    gone_at = wait_gone(stub, done, 10)
    assert gone_at - ended >= 0.9, "deleted %.2f s after its end" % (gone_at - ended)
    assert not os.path.exists(jobdir)
    assert done not in [j.job_id for j in stub.List(pb.ListRequest(), timeout=10).jobs]
    # a running job is kept however old it is; once ended, its turn comes
    assert status_code(stub, running) == grpc.StatusCode.OK
    st = wait(stub, running)
    assert st.state == pb.JOB_STATE_EXITED
    wait_gone(stub, running, 10)
    # and a restart does not bring anything back
    r.stop()
    r.start()
    assert status_code(r.stub(), done) == grpc.StatusCode.NOT_FOUND
    assert status_code(r.stub(), running) == grpc.StatusCode.NOT_FOUND


def test_old_jobs_found_at_start_are_deleted(rund_factory):
    r = rund_factory().start()
    stub = r.stub()
    old = start(stub, "/bin/true").job_id
    wait(stub, old)
    r.stop()
    time.sleep(1.2)
    r.extra_args = ["--retention", "1s"]
    r.start()
    wait_gone(r.stub(), old, 10)


def test_without_retention_jobs_are_kept(rund):
    stub = rund.stub()
    job = start(stub, "/bin/true").job_id
    wait(stub, job)
    time.sleep(1.5)
    assert status_code(stub, job) == grpc.StatusCode.OK


@pytest.mark.parametrize("value", ["0", "abc", "-1s", "10x", ""])
def test_bad_retention_is_refused(value, tmp_path):
    p = subprocess.run([RUND, "--retention", value, "--state-dir", str(tmp_path / "s"),
                        "--listen", "unix:%s/s.sock" % tmp_path], capture_output=True, timeout=20)
    assert p.returncode == 2, p
    assert b"--retention" in p.stderr and p.stderr.count(b"\n") == 1, p.stderr
