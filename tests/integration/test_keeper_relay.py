"""Each background job's output goes through its keeper (rund-waiter, or a
sandbox's init): the job writes into pipes, the keeper copies them into the
log files, and on a full disk it drains and counts what it cannot store (the
job never blocks nor sees an error), says so in Status, and stores again
once space frees."""
import os
import subprocess
import time

from conftest import logs, pb, start, wait, wait_for, job_status as status

PY = "/usr/bin/python3"




def test_output_goes_through_pipes_byte_exact(stub):
    # 3 MiB of a pattern on stdout, some stderr, and what the fds are
    script = ("import os, sys\n"
              "sys.stderr.write(os.readlink('/proc/self/fd/1') + '\\n')\n"
              "sys.stderr.flush()\n"
              "b = bytes(range(256)) * 4096\n"
              "for _ in range(3): os.write(1, b)\n")
    j = start(stub, PY, "-c", script).job_id
    st = wait(stub, j)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    out, err, _ = logs(stub, j)
    assert err.startswith(b"pipe:["), err
    assert out == (bytes(range(256)) * 4096) * 3
    st = status(stub, j)
    assert st.stdout_bytes == len(out) and st.stdout_lost_bytes == 0 and st.log_error == ""


def test_keeper_waits_for_children_holding_the_pipes(stub):
    """The command exits at once; a child it left writes later: the keeper
    stays until the pipe's EOF, so the late line is stored and the job ends
    after it."""
    j = start(stub, "/bin/sh", "-c", "(sleep 1; echo late) & echo early").job_id
    st = wait(stub, j)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    assert logs(stub, j)[0] == b"early\nlate\n"


def test_stop_ends_children_holding_the_pipes(stub):
    """A child that never lets go of stdout keeps the job running after its
    command exited; Stop kills it with the job's cgroup or process group."""
    j = start(stub, "/bin/sh", "-c", "sleep 1000 & echo started").job_id
    assert wait_for(lambda: logs(stub, j)[0] == b"started\n")
    time.sleep(0.3)
    assert status(stub, j).state == pb.JOB_STATE_RUNNING
    stub.Stop(pb.StopRequest(job_id=j, grace_ms=0), timeout=10)
    st = wait(stub, j)
    assert st.state != pb.JOB_STATE_RUNNING, st


def test_full_disk_counts_lost_bytes_and_recovers(rund_factory):
    r = rund_factory()
    os.makedirs(r.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", r.state],
                   check=True)
    try:
        r.start()
        stub = r.stub()
        flag = os.path.join(r.base, "go-on")
        # 64 KiB blocks, each write checked: the job sees no error; it writes
        # until told to stop, then 100 more, and exits 0
        script = ("import os, sys, time\n"
                  "blk = b'x' * 65535 + b'\\n'\n"
                  "n = 0\n"
                  "while not os.path.exists(sys.argv[1]):\n"
                  "    os.write(1, blk); n += 1; time.sleep(0.002)\n"
                  "for _ in range(10):\n"
                  "    os.write(1, blk); n += 1\n"
                  "open(sys.argv[2], 'w').write(str(n))\n")
        count = os.path.join(r.base, "count")
        j = start(stub, PY, "-c", script, flag, count).job_id
        assert wait_for(lambda: status(stub, j).stdout_bytes > 0)
        filler = os.path.join(r.state, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        # the job runs on, and Status counts and says why
        assert wait_for(lambda: status(stub, j).stdout_lost_bytes > 0), status(stub, j)
        st = status(stub, j)
        assert st.state == pb.JOB_STATE_RUNNING, st
        assert "stdout: No space left on device" in st.log_error, st
        lost_then, stored_then = st.stdout_lost_bytes, st.stdout_bytes
        # space again: storing resumes by itself
        os.unlink(filler)
        assert wait_for(lambda: status(stub, j).stdout_bytes > stored_then + 65536), status(stub, j)
        open(flag, "w").close()
        st = wait(stub, j)
        assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
        out, err, _ = logs(stub, j)
        total = int(open(count).read()) * 65536
        st = status(stub, j)
        assert st.stdout_lost_bytes >= lost_then > 0
        # every byte is either stored or counted as lost
        assert st.stdout_bytes + st.stdout_lost_bytes == total, (st, total)
        assert len(out) == st.stdout_bytes and set(out) <= {ord("x"), ord("\n")}
        assert st.stderr_lost_bytes == 0
        # runctl shows it too
        p = subprocess.run([os.environ.get("RUNCTL", "runctl"), "--addr", r.addr, "status", j],
                           capture_output=True, text=True, timeout=30)
        assert "lost_bytes: stdout %d, stderr 0" % st.stdout_lost_bytes in p.stdout, p.stdout
        r.stop()
    finally:
        r.kill()
        subprocess.run(["umount", "-l", r.state])


def test_sandboxed_job_output_goes_through_its_init(stub):
    """A sandboxed job's keeper is its init (PID 1 of its pid namespace):
    the same pipes. As a container, the job ends with its command: the init
    kills the rest of the namespace then (a child that would hold the pipes
    for 1,000 s does not keep the job), and still stores what was written."""
    req = pb.StartRequest(command=pb.Command(
        path="/bin/sh", args=["-c", "readlink /proc/self/fd/1; echo err >&2; "
                              "(echo child; exec sleep 1000) & sleep 0.3"]),
        sandbox=pb.Sandbox(profile="default"))
    j = stub.Start(req, timeout=30).job_id
    st = wait(stub, j)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    out, err, _ = logs(stub, j)
    assert out.startswith(b"pipe:[") and out.endswith(b"\nchild\n"), out
    assert err == b"err\n"
