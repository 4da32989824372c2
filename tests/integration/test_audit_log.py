"""rund --audit-log PATH|stderr (issue 17): one line per RPC as it ends, with
the identity, the method, the job, the argv of Start and Exec, the gRPC
code and the duration; never env values, secrets or tokens; one line
whatever argv holds; the file is reopened on SIGHUP (logrotate). Off by
default."""

import os
import re
import signal
import stat
import subprocess
import time

import grpc
import pytest

from conftest import RUND, Ctl, pb
from security_helpers import (call_error, new_token, pki, secrund_factory,  # noqa: F401
                              start_sleep)

LINE_RE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z audit=rpc method="([^"]*)" '
                     r'identity=("(?:[^"\\]|\\.)*"|-)(?: admin=true)? peer="[^"]*"'
                     r'(?: job="([0-9A-Z]*)")?(?: argv=\[(.*)\])?(?: job="([0-9A-Z]*)")?'
                     r' code=([A-Z_]+) duration_ms=\d+\.\d{3}$')


def parse(text):
    """Every line of the audit text, as dicts; a line that does not match
    the format fails the test."""
    out = []
    assert text.endswith("\n") or text == ""
    for ln in text.splitlines():
        m = LINE_RE.match(ln)
        assert m, "not an audit line: %r" % ln
        out.append({"line": ln, "method": m.group(1), "identity": m.group(2),
                    "job": m.group(3) or m.group(5), "argv": m.group(4), "code": m.group(6)})
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def wait_lines(path, pred, n=1, timeout=15):
    """The parsed lines once n of them satisfy pred (lines are written as
    calls end, which can be just after the client saw the answer)."""
    end = time.monotonic() + timeout
    while True:
        lines = parse(read(path)) if os.path.exists(path) else []
        hits = [x for x in lines if pred(x)]
        if len(hits) >= n or time.monotonic() > end:
            return hits
        time.sleep(0.05)


def of(method):
    return lambda x: x["method"] == "/runrpc.v1.Jobs/" + method


@pytest.fixture
def audited(rund_factory, tmp_path):
    path = str(tmp_path / "audit.log")
    r = rund_factory(extra_args=["--audit-log", path]).start()
    return r, path


def test_every_rpc_kind_one_line(audited):
    r, path = audited
    st = r.stub()
    s = st.Start(pb.StartRequest(command=pb.Command(path="sleep", args=["60"])), timeout=15)
    st.Status(pb.StatusRequest(job_id=s.job_id), timeout=10)
    st.Signal(pb.SignalRequest(job_id=s.job_id, number=15), timeout=10)
    st.Wait(pb.WaitRequest(job_id=s.job_id), timeout=30)
    list(st.Logs(pb.LogsRequest(job_id=s.job_id), timeout=10))
    st.Stop(pb.StopRequest(job_id=s.job_id, grace_ms=100), timeout=15)
    st.List(pb.ListRequest(), timeout=10)
    out = list(st.Exec(iter([pb.ExecRequest(start=pb.ExecStart(command=pb.Command(
        path="/bin/echo", args=["hello", "two words"])))]), timeout=30))
    assert out
    e = call_error(lambda: st.Status(pb.StatusRequest(job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                                     timeout=10))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    want = {"Start": ("OK", s.job_id, '"sleep","60"'),
            "Status": ("OK", s.job_id, None),
            "Signal": ("OK", s.job_id, None),
            "Wait": ("OK", s.job_id, None),
            "Logs": ("OK", s.job_id, None),
            "Stop": ("OK", s.job_id, None),
            "Exec": ("OK", None, '"/bin/echo","hello","two words"')}
    for method, (code, job, argv) in want.items():
        lines = wait_lines(path, lambda x: of(method)(x) and x["job"] == job)
        assert len(lines) == 1, (method, read(path))
        x = lines[0]
        assert (x["code"], x["argv"], x["identity"]) == (code, argv, '"uid:0"'), x
        assert " admin=true " in x["line"]
    nf = wait_lines(path, lambda x: x["code"] == "NOT_FOUND")
    assert len(nf) == 1 and nf[0]["job"] == "01ARZ3NDEKTSV4RRFFQ69G5FAV", nf
    # List: the one of the test and those rund_factory's readiness probe made
    lst = wait_lines(path, of("List"))
    assert lst and all(x["job"] is None and x["argv"] is None for x in lst)
    # nothing else is in the file, and every call had one line
    lines = parse(read(path))
    assert len(lines) == len(want) + 1 + len(lst), read(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    # rund's own log does not carry them
    assert "audit=rpc" not in r.stderr_text()


def test_refused_and_unknown_calls_logged(audited, tmp_path):
    r, path = audited
    ch = r.channel()
    e = call_error(lambda: ch.unary_unary("/made.up.Service/Nope")(b"", timeout=10))
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED
    x = wait_lines(path, lambda x: x["method"] == "/made.up.Service/Nope")
    assert len(x) == 1 and x[0]["code"] == "UNIMPLEMENTED", read(path)
    # a request that does not decode: the call is logged with its code
    e = call_error(lambda: ch.unary_unary("/runrpc.v1.Jobs/Start")(b"\xff\xff", timeout=10))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    x = wait_lines(path, lambda x: of("Start")(x) and x["code"] == "INVALID_ARGUMENT")
    assert len(x) == 1 and x[0]["argv"] is None, x


def varint(n):
    out = b""
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def test_argv_stays_one_line(audited, tmp_path):
    r, path = audited
    nasty = ["a\nb", 'q"uote', "back\\slash", "tab\there", "\x1b[31mred", "é☺", "cr\rlf"]
    st = r.stub()
    s = st.Start(pb.StartRequest(command=pb.Command(path="/bin/echo", args=nasty)), timeout=15)
    x = wait_lines(path, lambda x: of("Start")(x) and x["job"] == s.job_id)
    assert len(x) == 1, read(path)
    assert x[0]["argv"] == ('"/bin/echo","a\\nb","q\\"uote","back\\\\slash","tab\\there",'
                            '"\\x1b[31mred","é☺","cr\\rlf"'), x[0]["argv"]
    # bytes that are not UTF-8 (rund refuses the call, the line says so)
    cmd = field(1, b"/bin/echo") + field(2, b"\xff\xfe\n") + field(2, b"ok\xc3")
    e = call_error(lambda: r.channel().unary_unary("/runrpc.v1.Jobs/Start")(
        field(1, cmd), timeout=10))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    x = wait_lines(path, lambda x: of("Start")(x) and x["code"] == "INVALID_ARGUMENT")
    assert len(x) == 1, read(path)
    assert x[0]["argv"] == '"/bin/echo","\\xff\\xfe\\n","ok\\xc3"', x[0]["argv"]
    # the file is valid UTF-8 with one line per call (read() decoded it)
    assert all(LINE_RE.match(ln) for ln in read(path).split("\n")[:-1])


def test_no_env_secret_or_token(secrund_factory, tmp_path):
    path = str(tmp_path / "audit.log")
    tok = new_token()
    srv = secrund_factory(tokens={"alice": tok}, secrets_={"db": "s3cretvalue"},
                          admins=["token:alice"],
                          extra_args=["--audit-log", path]).start()
    a = srv.tls_stub(None, token=tok)
    out = tmp_path / "out"
    s = a.Start(pb.StartRequest(command=pb.Command(
        path="/bin/sh", args=["-c", 'printf %s "$DB" > ' + str(out)],
        env={"DB": "secret://db", "PLAIN": "plainenvvalue"})), timeout=15)
    a.Wait(pb.WaitRequest(job_id=s.job_id), timeout=30)
    assert out.read_text() == "s3cretvalue"
    x = list(a.Exec(iter([pb.ExecRequest(start=pb.ExecStart(command=pb.Command(
        path="/bin/true", env={"E": "execenvvalue", "S": "secret://db"})))]), timeout=30))
    assert x
    bad = srv.tls_stub(None, token=new_token())
    e = call_error(lambda: bad.List(pb.ListRequest(), timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    lines = wait_lines(path, lambda x: x["code"] == "UNAUTHENTICATED")
    assert len(lines) == 1 and lines[0]["identity"] == "-", lines
    start = wait_lines(path, of("Start"))
    assert start and start[0]["identity"] == '"token:alice"', start
    assert start[0]["job"] == s.job_id
    wait_lines(path, of("Exec"))
    text = read(path)
    for v in ("s3cretvalue", "secret://", "plainenvvalue", "execenvvalue", "PLAIN=", tok,
              tok[3:]):
        assert v not in text, (v, text)


def test_sighup_reopens_after_rename(audited, tmp_path):
    r, path = audited
    st = r.stub()
    st.List(pb.ListRequest(tag="before"), timeout=10)
    wait_lines(path, of("List"), n=2)
    rotated = path + ".1"
    os.rename(path, rotated)
    n_rotated = len(parse(read(rotated)))
    r.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 15
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.05)
    assert os.path.exists(path), r.stderr_text()
    st.List(pb.ListRequest(tag="after"), timeout=10)
    assert len(wait_lines(path, of("List"))) == 1
    # the old file got nothing more once renamed and reopened
    assert len(parse(read(rotated))) == n_rotated
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a file that cannot be opened: the old one stays, rund says why
    os.rename(path, rotated + "2")
    os.mkdir(path)
    r.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 15
    while "audit log not reopened" not in r.stderr_text() and time.monotonic() < end:
        time.sleep(0.05)
    assert 'audit log not reopened: the old one stays' in r.stderr_text()
    st.List(pb.ListRequest(), timeout=10)
    assert len(wait_lines(rotated + "2", of("List"), n=2)) == 2


def test_stderr_and_config_key(rund_factory, tmp_path):
    r = rund_factory(extra_args=["--audit-log", "stderr"]).start()
    Ctl(r.addr)("exec", "--", "true")
    end = time.monotonic() + 15
    while 'audit=rpc method="/runrpc.v1.Jobs/Exec"' not in r.stderr_text() and \
            time.monotonic() < end:
        time.sleep(0.05)
    lines = [ln for ln in r.stderr_text().splitlines() if " audit=rpc " in ln]
    assert [x["argv"] for x in parse("\n".join(lines) + "\n") if of("Exec")(x)] == ['"true"']
    # the config file's key, and a bad value refused with FILE:LINE
    path = str(tmp_path / "conf.log")
    conf = tmp_path / "rund.conf"
    conf.write_text("audit-log = %s\n" % path)
    r2 = rund_factory(extra_args=["--config", str(conf)]).start()
    Ctl(r2.addr)("list")
    assert wait_lines(path, of("List"), n=2)
    conf.write_text("\naudit-log = relative.log\n")
    p = subprocess.run([RUND, "--config", str(conf), "--listen", "unix:" + str(tmp_path / "x"),
                        "--state-dir", str(tmp_path / "st")], capture_output=True, timeout=30)
    assert p.returncode == 2, p
    assert b"rund.conf:2" in p.stderr and b"absolute" in p.stderr, p.stderr


def test_off_by_default(rund):
    Ctl(rund.addr)("exec", "--", "true")
    assert "audit=rpc" not in rund.stderr_text()
    assert not any("audit" in f for f in os.listdir(rund.base)), os.listdir(rund.base)
