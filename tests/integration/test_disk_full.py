"""A full disk under rund's state dir (a small tmpfs here): rund keeps
serving, says why in Status and its log, refuses new jobs with
RESOURCE_EXHAUSTED, and recovers by itself once space frees."""
import os
import subprocess

import grpc
import pytest

from conftest import logs, pb, rpc_error, start, wait, wait_for, job_status as status

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")

FULL = "state dir is full"




def fill(path):
    with open(path, "wb") as f:
        block = b"\0" * 65536
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass


def test_full_disk_is_reported_and_recovered_from(rund_factory):
    r = rund_factory()
    os.makedirs(r.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", r.state],
                   check=True)
    try:
        r.start()
        stub = r.stub()
        job = start(stub, "/bin/sh", "-c",
                    "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.01; done").job_id
        assert wait_for(lambda: b"line 3" in logs(stub, job)[0])
        assert status(stub, job).detail == ""
        filler = os.path.join(r.state, "filler")
        fill(filler)
        # the job runs on (its writes fail), and Status says why
        assert wait_for(lambda: FULL in status(stub, job).detail), status(stub, job)
        assert status(stub, job).state == pb.JOB_STATE_RUNNING
        e = rpc_error(start, stub, "/bin/true")
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        assert "No space left on device" in e.details(), e.details()
        assert stub.List(pb.ListRequest(), timeout=10).jobs  # still serving
        # space again: the notice goes, output is stored again, starts work
        os.unlink(filler)
        assert wait_for(lambda: status(stub, job).detail == ""), status(stub, job)
        before = len(logs(stub, job)[0])
        assert wait_for(lambda: len(logs(stub, job)[0]) > before + 20)
        assert wait(stub, start(stub, "/bin/true").job_id).exit_code == 0
        stub.Stop(pb.StopRequest(job_id=job, grace_ms=0), timeout=10)
        wait(stub, job)
        text = r.stderr_text()
        assert "is full" in text and "has space again" in text, text[-3000:]
        r.stop()
    finally:
        r.kill()
        subprocess.run(["umount", "-l", r.state])
