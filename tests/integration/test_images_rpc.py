"""runrpc.v1.Images through a real rund: runctl image import|ls|inspect|rm
and python grpcio as an independent client: each archive format uploaded,
stdin uploads, every bad input with its status and message, who may import
and remove, a client that goes away mid-upload, a full disk, a 1 GiB layer
and a large upload with rund's RSS bounded (the file is streamed to disk),
and removal collecting the layers."""
import gzip
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

import grpc
import pytest

from conftest import PROTO_DIR, RUNCTL, Ctl, check_no_sanitizer, rss_kib, short_tmpdir, wait_for
from oci_callers import make_image_archive

MiB = 1024 * 1024


def _gen_image_stubs():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="rr-img-stubs-")
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", "-I" + PROTO_DIR, "-I" + wkt, "--python_out=" + out,
                      "--grpc_python_out=" + out,
                      os.path.join(PROTO_DIR, "runrpc", "v1", "images.proto")])
    assert rc == 0
    sys.path.insert(0, out)
    return (importlib.import_module("runrpc.v1.images_pb2"),
            importlib.import_module("runrpc.v1.images_pb2_grpc"))


ipb, ipb_grpc = _gen_image_stubs()


@pytest.fixture(scope="module")
def archives():
    tmp = short_tmpdir("rr-imgrpc-")
    oci = make_image_archive(tmp, "oci-archive")
    docker = os.path.join(tmp, "docker.tar")
    subprocess.run(["skopeo", "copy", "oci:%s/oci:bb" % tmp,
                    "docker-archive:%s:localhost/rr-busybox:1" % docker],
                   check=True, capture_output=True, timeout=120)
    os.chmod(tmp, 0o755)
    for f in (oci, docker):
        os.chmod(f, 0o644)
    yield {"oci-archive": oci, "docker-archive": docker, "dir": tmp}
    shutil.rmtree(tmp, ignore_errors=True)


def images_stub(rund):
    return ipb_grpc.ImagesStub(rund.channel())


def store(rund, *sub):
    return os.path.join(rund.state, "images", *sub)


def leftovers(rund):
    return {d: sorted(os.listdir(store(rund, d))) for d in ("layers", "tmp", "uploads")}


def nothing_left(rund):
    return leftovers(rund) == {"layers": [], "tmp": [], "uploads": []}



def upload(stub, data, name="", fmt="", chunk=MiB, timeout=120):
    def gen():
        yield ipb.ImportRequest(start=ipb.ImportStart(name=name, format=fmt))
        for i in range(0, len(data), chunk):
            yield ipb.ImportRequest(chunk=data[i:i + chunk])
    return stub.Import(gen(), timeout=timeout)


def rpc_fails(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*a, **kw)
    return ei.value.code(), ei.value.details()


def tar_bytes(members, gz=False):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz" if gz else "w") as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_runctl_import_ls_inspect_rm(rund, ctl, archives, fmt):
    r = ctl("image", "import", archives[fmt])
    assert r.rc == 0, r
    (img_id,) = r.text.split()
    assert img_id.startswith("sha256:") and len(img_id) == 71
    r = ctl("image", "ls", "--json")
    assert r.rc == 0, r
    (img,) = json.loads(r.out)
    assert img["id"] == img_id and img["names"] == ["localhost/rr-busybox:1"]
    assert img["format"] == fmt and img["config"]["config"]["Cmd"] == ["/bin/sh"]
    assert img["size"] == sum(l["size"] for l in img["layers"]) > 0
    r = ctl("image", "ls")
    assert r.rc == 0 and "localhost/rr-busybox:1" in r.text and img_id[7:26] in r.text, r
    for ref in ("localhost/rr-busybox:1", img_id, "localhost/rr-busybox@" + img_id):
        r = ctl("image", "inspect", ref)
        assert r.rc == 0 and json.loads(r.out)["id"] == img_id, r
    assert len(leftovers(rund)["layers"]) == 1
    r = ctl("image", "rm", "localhost/rr-busybox:1")
    assert r.rc == 0 and r.text.startswith("removed"), r
    assert json.loads(ctl("image", "ls", "--json").out) == []
    assert wait_for(lambda: nothing_left(rund)), leftovers(rund)  # gc runs in a child


def test_runctl_import_from_stdin_and_names(rund, ctl, archives):
    data = open(archives["oci-archive"], "rb").read()
    r = ctl("image", "import", "-", "--name", "bb", input=data, timeout=120)
    assert r.rc == 0, r
    r = ctl("image", "import", archives["docker-archive"], "--name", "bb:2", "--json")
    assert r.rc == 0, r
    (img,) = json.loads(r.out)
    names = json.loads(ctl("image", "inspect", "bb:latest").out)["names"]
    assert names == ["bb:latest", "bb:2"]
    assert json.loads(ctl("image", "inspect", "bb:2").out)["id"] == img["id"]
    r = ctl("image", "rm", "bb")
    assert r.rc == 0 and r.text.startswith("untagged"), r
    assert json.loads(ctl("image", "inspect", "bb:2").out)["names"] == ["bb:2"]


def test_errors_status_and_message(rund, ctl, archives, tmp_path):
    stub = images_stub(rund)
    data = open(archives["oci-archive"], "rb").read()
    cases = [
        (lambda: stub.Inspect(ipb.ImageInspectRequest(ref="nope:1"), timeout=10),
         grpc.StatusCode.NOT_FOUND, 'image "nope:1" not found'),
        (lambda: stub.Inspect(ipb.ImageInspectRequest(ref=""), timeout=10),
         grpc.StatusCode.INVALID_ARGUMENT, "ref is empty"),
        (lambda: stub.Inspect(ipb.ImageInspectRequest(ref="Bad/Name"), timeout=10),
         grpc.StatusCode.INVALID_ARGUMENT, 'bad image name "Bad/Name"'),
        (lambda: stub.Remove(ipb.ImageRemoveRequest(ref="sha256:" + "0" * 64), timeout=10),
         grpc.StatusCode.NOT_FOUND, 'image "sha256:%s" not found' % ("0" * 64)),
        (lambda: upload(stub, data, name="UPPER"),
         grpc.StatusCode.INVALID_ARGUMENT, 'bad image name "UPPER"'),
        (lambda: upload(stub, data, name="sha256:" + "1" * 64),
         grpc.StatusCode.INVALID_ARGUMENT, "is a digest: want NAME[:TAG]"),
        (lambda: upload(stub, data, fmt="zip"),
         grpc.StatusCode.INVALID_ARGUMENT, 'unknown format "zip"'),
        (lambda: upload(stub, b"junk" + os.urandom(15000), name="junk"),
         grpc.StatusCode.INVALID_ARGUMENT, "is not a readable tar"),
        (lambda: upload(stub, tar_bytes([("bin/x", b"x")])),
         grpc.StatusCode.INVALID_ARGUMENT, "a root filesystem tar needs a name"),
        (lambda: upload(stub, tar_bytes([("../x", b"x")]), name="slip"),
         grpc.StatusCode.INVALID_ARGUMENT, '"../x": ".." in a path refused'),
        (lambda: upload(stub, data[:len(data) // 2]),
         grpc.StatusCode.INVALID_ARGUMENT, "not a readable tar"),
        (lambda: stub.Import(iter([ipb.ImportRequest(chunk=b"x")]), timeout=10),
         grpc.StatusCode.INVALID_ARGUMENT, "the first ImportRequest must be start"),
        (lambda: stub.Import(iter([]), timeout=10),
         grpc.StatusCode.INVALID_ARGUMENT, "Import stream closed before a start message"),
        (lambda: stub.Import(iter([ipb.ImportRequest(start=ipb.ImportStart()),
                                   ipb.ImportRequest(start=ipb.ImportStart())]), timeout=10),
         grpc.StatusCode.INVALID_ARGUMENT, "start sent twice"),
    ]
    for fn, code, words in cases:
        try:
            fn()
            pytest.fail("no error, wanted %s %r" % (code, words))
        except grpc.RpcError as err:
            got, details = err.code(), err.details()
        assert got == code and words in details, (code, words, got, details)
        assert wait_for(lambda: nothing_left(rund)), (words, leftovers(rund))
    r = ctl("image", "import", str(tmp_path / "missing.tar"))
    assert r.rc == 1 and "cannot open" in r.errtext and "missing.tar" in r.errtext, r
    r = ctl("image", "inspect")
    assert r.rc == 2 and "inspect needs an image" in r.errtext, r
    r = ctl("image", "ls", "--name", "x")
    assert r.rc == 2 and "--name and --format are flags of import" in r.errtext, r
    r = ctl("image", "frob")
    assert r.rc == 2 and 'unknown verb "frob"' in r.errtext, r
    # the store is still usable
    assert len(upload(stub, data).images) == 1


def test_digest_mismatch_over_rpc(rund, archives, tmp_path):
    """An oci-archive whose layer blob was altered after its manifest named it."""
    src = os.path.join(archives["dir"], "oci")
    work = tmp_path / "oci"
    shutil.copytree(src, work)
    index = json.load(open(work / "index.json"))
    manifest = json.load(open(work / "blobs/sha256" / index["manifests"][0]["digest"][7:]))
    ldig = manifest["layers"][0]["digest"][7:]
    blob = work / "blobs/sha256" / ldig
    raw = gzip.decompress(open(blob, "rb").read())
    os.chmod(blob, 0o644)
    open(blob, "wb").write(gzip.compress(raw + b"\0" * 1024, 1))  # still a valid layer
    tar = tmp_path / "bad.tar"
    subprocess.run(["tar", "-C", str(work), "-cf", str(tar), "."], check=True)
    code, details = rpc_fails(upload, images_stub(rund), open(tar, "rb").read())
    assert code == grpc.StatusCode.DATA_LOSS, details
    assert "layer sha256:%s: digest mismatch: want sha256:%s, the content is sha256:" % (
        ldig[:12], ldig) in details
    assert wait_for(lambda: nothing_left(rund)), leftovers(rund)


def run_as_nobody(rund, *args):
    env = {k: v for k, v in os.environ.items()
           if k in ("LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
    env.update(PATH="/usr/bin:/bin", HOME="/")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        RUNCTL, "--addr", rund.addr, *args],
                       capture_output=True, timeout=60, env=env)
    check_no_sanitizer(p.stderr, "runctl as nobody")
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_only_admins_import_and_remove(rund, ctl, archives):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid")
    os.chmod(rund.base, 0o711)
    rc, out, err = run_as_nobody(rund, "image", "import", archives["oci-archive"])
    assert rc == 1 and "PERMISSION_DENIED: importing images needs an admin" in err, err
    assert nothing_left(rund)
    assert ctl("image", "import", archives["oci-archive"]).rc == 0
    rc, out, err = run_as_nobody(rund, "image", "ls", "--json")
    assert rc == 0 and json.loads(out)[0]["names"] == ["localhost/rr-busybox:1"], err
    rc, out, err = run_as_nobody(rund, "image", "inspect", "localhost/rr-busybox:1")
    assert rc == 0, err
    rc, out, err = run_as_nobody(rund, "image", "rm", "localhost/rr-busybox:1")
    assert rc == 1 and "PERMISSION_DENIED: removing images needs an admin" in err, err
    assert len(json.loads(ctl("image", "ls", "--json").out)) == 1


def test_client_gone_mid_upload_leaves_nothing(rund):
    stub = images_stub(rund)
    sent = []

    def gen():
        yield ipb.ImportRequest(start=ipb.ImportStart(name="gone"))
        for _ in range(8):
            sent.append(1)
            yield ipb.ImportRequest(chunk=b"\0" * MiB)
        time.sleep(30)  # never half-closes
    fut = stub.Import.future(gen(), timeout=60)
    assert wait_for(lambda: len(sent) == 8 and leftovers(rund)["uploads"])
    fut.cancel()
    assert wait_for(lambda: nothing_left(rund)), leftovers(rund)
    assert list(images_stub(rund).List(ipb.ImageListRequest(), timeout=10).images) == []


def test_disk_full_during_upload(rund_factory, archives):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = rund_factory()
    os.makedirs(r.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "rr-img-full", r.state], check=True)
    try:
        r.start()
        stub = images_stub(r)
        code, details = rpc_fails(upload, stub, b"\0" * (40 * MiB), "big")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert "cannot store the upload" in details and "No space left on device" in details
        assert nothing_left(r), leftovers(r)
        assert len(upload(stub, open(archives["oci-archive"], "rb").read()).images) == 1
        r.stop()
    finally:
        r.kill()
        subprocess.run(["umount", r.state], check=False)


def test_disk_full_while_unpacking(rund_factory, archives):
    """A small upload whose layer inflates past the disk: the import fails
    with RESOURCE_EXHAUSTED naming the file, its partial layer is removed,
    the store stays usable."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = rund_factory()
    os.makedirs(r.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "rr-img-full", r.state], check=True)
    try:
        r.start()
        stub = images_stub(r)
        blob = tar_bytes([("big/data", b"x" * (40 * MiB))], gz=True)
        assert len(blob) < 2 * MiB
        code, details = rpc_fails(upload, stub, blob, "full:1", "rootfs")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert 'cannot write "big/data"' in details and "No space left on device" in details, \
            details
        assert wait_for(lambda: nothing_left(r)), leftovers(r)
        assert list(stub.List(ipb.ImageListRequest(), timeout=10).images) == []
        assert len(upload(stub, open(archives["oci-archive"], "rb").read()).images) == 1
        r.stop()
    finally:
        r.kill()
        subprocess.run(["umount", r.state], check=False)


def gz_of_zeros_tar(name, size):
    """A gzip'd tar holding one file of size zero bytes, made from
    concatenated gzip members (cheap to build, 1 GiB expands from ~1 MiB)."""
    ti = tarfile.TarInfo(name)
    ti.size = size
    header = ti.tobuf(format=tarfile.GNU_FORMAT)

    def member(data):
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    zeros = member(b"\0" * MiB)
    pad = (-size) % 512
    return (member(header) + zeros * (size // MiB) + member(b"\0" * (size % MiB + pad + 1024)))


@pytest.mark.timeout(240)
def test_large_layer_and_upload_rss_bounded(rund_factory):
    # ASan keeps freed memory in a quarantine (256 MiB by default): shrink it
    # so that RSS reflects what rund really holds
    opts = os.environ.get("ASAN_OPTIONS", "")
    opts = (opts + ":" if opts else "") + "quarantine_size_mb=16:thread_local_quarantine_size_kb=256"
    rund = rund_factory(env_extra={"ASAN_OPTIONS": opts}).start()
    ctl = Ctl(rund.addr)
    stub = images_stub(rund)
    base = rss_kib(rund.pid)
    # a 1 GiB file in a layer: unpacked as a sparse file
    blob = gz_of_zeros_tar("big.bin", 1024 * MiB)
    res = upload(stub, blob, name="big:1", timeout=200)
    (img,) = res.images
    (layer,) = leftovers(rund)["layers"]
    st = os.stat(store(rund, "layers", layer, "big.bin"))
    assert st.st_size == 1024 * MiB and st.st_blocks * 512 < 16 * MiB
    # 256 MiB streamed through runctl's stdin: written to disk as it comes
    path = os.path.join(rund.base, "up.tar")
    with open(path, "wb") as f:
        ti = tarfile.TarInfo("data.bin")
        ti.size = 256 * MiB
        f.write(ti.tobuf(format=tarfile.GNU_FORMAT))
        chunk = os.urandom(MiB)
        for _ in range(256):
            f.write(chunk)
        f.write(b"\0" * 1024)
    peak = [base]
    p = subprocess.Popen([RUNCTL, "--addr", rund.addr, "image", "import", path, "--name",
                          "stream:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while p.poll() is None:
        peak[0] = max(peak[0], rss_kib(rund.pid))
        time.sleep(0.02)
    out, err = p.communicate()
    check_no_sanitizer(err, "runctl")
    assert p.returncode == 0, err
    os.unlink(path)
    grown = peak[0] - base
    assert grown < 64 * 1024, "rund's RSS grew by %d KiB for a 256 MiB upload" % grown
    assert set(json.loads(ctl("image", "ls", "--json").out)[i]["names"][0]
               for i in range(2)) == {"big:1", "stream:1"}
    for ref in ("big:1", "stream:1"):
        assert ctl("image", "rm", ref).rc == 0
    assert wait_for(lambda: nothing_left(rund), 60), leftovers(rund)
