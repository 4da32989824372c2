"""runctl logs says where the job's keeper lost bytes on a full disk (its
order index records them at their place: stream, offset, count) and exits 1;
the keeper is rund-waiter or a sandbox's init (the same relay.c)."""
import os
import re
import shutil
import tempfile

import pytest

from conftest import Ctl, logs, pb, rund_on_small_tmpfs, wait, wait_for, job_status as status

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")

PY = "/usr/bin/python3"
SCRIPT = ("import fcntl, os, struct, sys, termios, time\n"
          "def put(fd, b):\n"
          "    os.write(fd, b)\n"
          "    while struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'\\0' * 4))[0]:\n"
          "        time.sleep(0.001)\n"
          "def wait_file(p):\n"
          "    while not os.path.exists(p): time.sleep(0.01)\n"
          "put(1, b'before\\n'); put(2, b'e-before\\n')\n"
          "wait_file(sys.argv[1])\n"
          "put(1, b'x' * 65536); put(2, b'y' * 65536)\n"
          "wait_file(sys.argv[2])\n"
          "put(1, b'after\\n'); put(2, b'e-after\\n')\n")


def fill(path):
    with open(path, "wb", buffering=0) as f:  # page by page: nothing left to flush
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sandbox", [None, "default"])
def test_lost_bytes_are_said_where_they_are_missing(rund_factory, request, sandbox):
    # flags the job waits for: outside /tmp, which a sandbox has its own of
    flags = tempfile.mkdtemp(dir="/var/tmp")
    request.addfinalizer(lambda: shutil.rmtree(flags, ignore_errors=True))
    full, free = os.path.join(flags, "full"), os.path.join(flags, "free")
    with rund_on_small_tmpfs(rund_factory) as r:
        stub = r.stub()
        req = pb.StartRequest(command=pb.Command(path=PY, args=["-c", SCRIPT, full, free]))
        if sandbox:
            req.sandbox.CopyFrom(pb.Sandbox(profile=sandbox))
        j = stub.Start(req, timeout=30).job_id
        assert wait_for(lambda: logs(stub, j)[1] == b"e-before\n")
        filler = os.path.join(r.state, "filler")
        fill(filler)
        open(full, "w").close()
        assert wait_for(lambda: status(stub, j).stderr_lost_bytes > 0, timeout=60), status(stub, j)
        os.unlink(filler)
        open(free, "w").close()
        st = wait(stub, j, timeout=60)
        assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
        st = status(stub, j)
        # some of the 64 KiB may fit in the file's last page: stored, the rest lost
        out, err, msgs = logs(stub, j)
        lost = [(m.stream, m.offset, m.lost) for m in msgs if m.lost]
        nx, ny = out.count(b"x"), err.count(b"y")
        assert out == b"before\n" + b"x" * nx + b"after\n", out[:100]
        assert err == b"e-before\n" + b"y" * ny + b"e-after\n", err[:100]
        assert sum(n for s, _, n in lost if s == pb.STREAM_STDOUT) == 65536 - nx == \
            st.stdout_lost_bytes > 0, (lost, st)
        assert sum(n for s, _, n in lost if s == pb.STREAM_STDERR) == 65536 - ny == \
            st.stderr_lost_bytes > 0, (lost, st)
        # at their place: after the bytes stored before them, before "after"
        for s, off, _ in lost:
            first = len(b"before\n") if s == pb.STREAM_STDOUT else len(b"e-before\n")
            assert first <= off <= first + (nx if s == pb.STREAM_STDOUT else ny), (s, off)
        # runctl: a line per place on stderr, the output as stored, exit 1
        ctl = Ctl(r.addr)
        res = ctl("logs", j)
        assert res.rc == 1, res
        assert res.out == out
        said = re.findall(rb"runctl: logs: (\d+) bytes of (stdout|stderr) are missing at offset "
                          rb"(\d+): the job's keeper could not store them \(disk full\)\n", res.err)
        assert sorted((int(n), s, int(o)) for n, s, o in said) == sorted(
            (n, b"stdout" if s == pb.STREAM_STDOUT else b"stderr", o) for s, o, n in lost), res.err
        assert b"output is incomplete: the job's keeper could not store %d bytes of stdout and " \
            b"%d of stderr" % (st.stdout_lost_bytes, st.stderr_lost_bytes) in res.err, res.err
        # one stream alone: only its losses
        res = ctl("logs", j, "--stdout")
        assert res.rc == 1 and b"of stderr are missing" not in res.err, res
        # past the loss (a reader reconnecting after it): nothing missing there
        res = ctl("logs", j, "--offset", "%d,%d" % (len(out) - 5, len(err) - 7))
        assert res.rc == 0 and res.out == b"fter\n" and res.err == b"-after\n", res
        r.stop()
