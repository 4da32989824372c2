"""The image store through `rund image` (no daemon): each import format of
a busybox image made offline (umoci + skopeo + busybox-static), root
filesystem tars written here with tarfile (whiteouts, hard links, devices,
the tar-slip attacks), digest mismatches, failed imports leaving nothing,
concurrent imports, removal and garbage collection."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import RUND, SANITIZER_RE, short_tmpdir
from image_helpers import (compress, layer_tar, sha, tar_of_dir, write_docker_archive,
                           write_oci_layout)
from oci_callers import make_image_archive, need


def rund_image(state, *args, check=True):
    p = subprocess.run([RUND, "image", *args, "--state-dir", state],
                       capture_output=True, text=True, timeout=120)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def images():
    """tmp/oci (layout), tmp/image.tar (oci-archive), tmp/docker.tar."""
    tmp = short_tmpdir("rr-img-")
    archive = make_image_archive(tmp, "oci-archive")
    docker = os.path.join(tmp, "docker.tar")
    subprocess.run(["skopeo", "copy", "oci:%s/oci:bb" % tmp,
                    "docker-archive:%s:localhost/rr-busybox:1" % docker],
                   check=True, capture_output=True, timeout=120)
    yield {"dir": tmp, "layout": os.path.join(tmp, "oci"), "oci-archive": archive,
           "docker-archive": docker}
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def state():
    d = short_tmpdir("rr-imgst-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def store_leftovers(state):
    """Layers and temporary files in the store."""
    base = os.path.join(state, "images")
    return sorted(os.listdir(os.path.join(base, "layers"))) + \
        sorted("tmp/" + n for n in os.listdir(os.path.join(base, "tmp")))


def layer_dirs(state):
    base = os.path.join(state, "images", "layers")
    return [os.path.join(base, n) for n in sorted(os.listdir(base))]


def write_tar(path, members, gz=True):
    """members: (name, kind, payload) with kind file/dir/symlink/hardlink/chr/fifo."""
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            t.addfile(ti, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("fmt", ["layout", "oci-archive", "docker-archive"])
def test_import_each_format(images, state, fmt):
    p = rund_image(state, "import", images[fmt], "--json")
    out = json.loads(p.stdout)
    assert len(out["ids"]) == 1 and out["ids"][0].startswith("sha256:")
    assert out["layers_unpacked"] == 1
    ls = json.loads(rund_image(state, "ls", "--json").stdout)
    assert [r["id"] for r in ls] == out["ids"]
    want = {"layout": "bb:latest", "oci-archive": "localhost/rr-busybox:1",
            "docker-archive": "localhost/rr-busybox:1"}[fmt]
    assert ls[0]["names"] == [want]
    assert ls[0]["config"]["config"]["Cmd"] == ["/bin/sh"]
    insp = json.loads(rund_image(state, "inspect", want).stdout)
    assert insp["id"] == out["ids"][0]
    (layer,) = layer_dirs(state)
    assert os.path.islink(os.path.join(layer, "bin", "sh"))
    assert os.access(os.path.join(layer, "bin", "busybox"), os.X_OK)
    # the same image again: nothing unpacked twice, same id
    again = json.loads(rund_image(state, "import", images[fmt], "--json").stdout)
    assert again["ids"] == out["ids"] and again["layers_unpacked"] == 0
    assert store_leftovers(state) == [os.path.basename(layer)]


def test_import_name_and_digest_refs(images, state):
    out = rund_image(state, "import", images["oci-archive"], "--name", "busybox").stdout.split()
    (img_id,) = out
    for ref in ("busybox", "busybox:latest", img_id, img_id[7:], "busybox@" + img_id):
        assert json.loads(rund_image(state, "inspect", ref).stdout)["id"] == img_id
    p = rund_image(state, "inspect", "nosuch:1", check=False)
    assert p.returncode == 1 and 'NOT_FOUND: image "nosuch:1" not found' in p.stderr
    for bad in ("BusyBox", "a//b", "x:", "sha256:1234"):
        p = rund_image(state, "import", images["oci-archive"], "--name", bad, check=False)
        assert p.returncode == 1 and "INVALID_ARGUMENT" in p.stderr and bad in p.stderr, bad
    assert store_leftovers(state) != []  # the first import stays


def test_rootfs_tar(state):
    tmp = os.path.join(state, "in")
    os.mkdir(tmp)
    tar = os.path.join(tmp, "root.tar.gz")
    write_tar(tar, [("bin/", "dir", None), ("bin/tool", "file", "#!/bin/sh\n"),
                    ("bin/tool2", "hardlink", "bin/tool"), ("dev/null", "chr", None),
                    ("run/fifo", "fifo", None), ("etc/passwd", "file", "root:x:0:0::/:/bin/sh\n")])
    p = rund_image(state, "import", tar, check=False)
    assert p.returncode == 1
    assert "needs a name (--name NAME[:TAG])" in p.stderr
    assert store_leftovers(state) == []
    out = json.loads(rund_image(state, "import", tar, "--name", "mini:1", "--json").stdout)
    (layer,) = layer_dirs(state)
    assert os.path.basename(layer) == hashlib.sha256(open(tar, "rb").read()).hexdigest()
    a, b = os.stat(os.path.join(layer, "bin/tool")), os.stat(os.path.join(layer, "bin/tool2"))
    assert a.st_ino == b.st_ino
    if os.geteuid() == 0:
        st = os.lstat(os.path.join(layer, "dev/null"))
        assert os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
        assert out["devices_skipped"] == 0
    rec = json.loads(rund_image(state, "inspect", "mini:1").stdout)
    assert rec["format"] == "rootfs" and rec["id"] == out["ids"][0]


def test_whiteouts(state):
    if os.geteuid() != 0:
        pytest.skip("overlayfs whiteouts need root")
    tar = os.path.join(state, "wh.tar")
    write_tar(tar, [("etc/.wh.removed", "file", ""), ("var/cache/.wh..wh..opq", "file", ""),
                    ("var/cache/kept", "file", "k"), ("x/.wh..wh.plnk", "file", "")], gz=False)
    rund_image(state, "import", tar, "--name", "wh")
    (layer,) = layer_dirs(state)
    st = os.lstat(os.path.join(layer, "etc/removed"))
    import stat as st_mod
    assert st_mod.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(os.path.join(layer, "etc/.wh.removed"))
    assert os.getxattr(os.path.join(layer, "var/cache"), "trusted.overlay.opaque") == b"y"
    assert os.listdir(os.path.join(layer, "var/cache")) == ["kept"]
    assert os.listdir(os.path.join(layer, "x")) == []


@pytest.mark.parametrize("members,word", [
    ([("../evil", "file", "x")], '"..\" in a path refused'),
    ([("/evil", "file", "x")], "absolute path refused"),
    ([("a/../../evil", "file", "x")], '".." in a path refused'),
    ([("esc", "symlink", "../../../../etc")], "leaves the root: refused"),
    ([("d/", "dir", None), ("d/esc", "symlink", "../..")], "leaves the root: refused"),
    ([("hl", "hardlink", "../../etc/passwd")], '".." in a path refused'),
    ([("hl", "hardlink", "/etc/passwd")], "absolute path refused"),
])
def test_tar_slip_refused(state, members, word):
    tar = os.path.join(state, "slip.tar")
    write_tar(tar, [("ok", "file", "fine")] + members, gz=False)
    p = rund_image(state, "import", tar, "--name", "slip", check=False)
    assert p.returncode == 1
    assert "INVALID_ARGUMENT" in p.stderr and word.replace('\\"', '"') in p.stderr, p.stderr
    assert store_leftovers(state) == []
    assert json.loads(rund_image(state, "ls", "--json").stdout) == []


def test_symlinks_resolve_inside_the_layer(state):
    tar = os.path.join(state, "via.tar")
    marker = "rr-images-test-%d" % os.getpid()
    write_tar(tar, [("up", "symlink", "/"), ("up/" + marker, "file", "x"),
                    ("etc", "symlink", "/data"), ("data/", "dir", None),
                    ("etc/" + marker, "file", "y")], gz=False)
    rund_image(state, "import", tar, "--name", "via")
    assert not os.path.exists("/" + marker) and not os.path.exists("/etc/" + marker)
    (layer,) = layer_dirs(state)
    assert sorted(os.listdir(layer)) == sorted(["up", "etc", "data", marker])
    assert os.listdir(os.path.join(layer, "data")) == [marker]
    # a symlink loop is refused, not followed
    write_tar(tar, [("etc", "symlink", "/etc"), ("etc/x", "file", "y")], gz=False)
    p = rund_image(state, "import", tar, "--name", "loop", check=False)
    assert p.returncode == 1
    assert 'INVALID_ARGUMENT: root filesystem tar: cannot open directory "etc"' in p.stderr


def test_digest_mismatch_refused(images, state):
    layout = os.path.join(state, "oci")
    shutil.copytree(images["layout"], layout, symlinks=True)
    index = json.load(open(os.path.join(layout, "index.json")))
    mdig = index["manifests"][0]["digest"][7:]
    manifest = json.load(open(os.path.join(layout, "blobs/sha256", mdig)))
    ldig = manifest["layers"][0]["digest"][7:]
    blob = os.path.join(layout, "blobs/sha256", ldig)
    data = bytearray(open(blob, "rb").read())
    data[len(data) // 2] ^= 0xff
    os.chmod(blob, 0o644)
    open(blob, "wb").write(bytes(data))
    p = rund_image(state, "import", layout, check=False)
    assert p.returncode == 1
    # a corrupted gzip stream fails to inflate or fails its digest: both name the layer
    assert "sha256:" + ldig[:12] in p.stderr, p.stderr
    assert store_leftovers(state) == []
    # a manifest that does not hash to its name
    open(blob, "wb").write(open(os.path.join(images["layout"], "blobs/sha256", ldig), "rb").read())
    mpath = os.path.join(layout, "blobs/sha256", mdig)
    os.chmod(mpath, 0o644)
    open(mpath, "w").write(json.dumps(manifest, indent=1))
    p = rund_image(state, "import", layout, check=False)
    assert p.returncode == 1
    assert "DATA_LOSS" in p.stderr and "digest mismatch: want sha256:" + mdig in p.stderr
    assert store_leftovers(state) == []


def test_layer_digest_mismatch_names_it(state):
    """An OCI layout written here whose layer descriptor names another digest."""
    layout = os.path.join(state, "oci")
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    tar = os.path.join(state, "l.tar")
    write_tar(tar, [("f", "file", "data")], gz=False)
    layer = open(tar, "rb").read()

    def put(b):
        d = hashlib.sha256(b).hexdigest()
        open(os.path.join(layout, "blobs/sha256", d), "wb").write(b)
        return d
    real = put(layer)
    fake = hashlib.sha256(b"other").hexdigest()
    os.rename(os.path.join(layout, "blobs/sha256", real), os.path.join(layout, "blobs/sha256", fake))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + real]}}).encode()
    cd = put(config)
    man = json.dumps({"schemaVersion": 2, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd,
        "size": len(config)}, "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                          "digest": "sha256:" + fake, "size": len(layer)}]}).encode()
    md = put(man)
    open(os.path.join(layout, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md,
         "size": len(man)}]}))
    open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    p = rund_image(state, "import", layout, "--name", "fake", check=False)
    assert p.returncode == 1
    assert "DATA_LOSS" in p.stderr
    assert "digest mismatch: want sha256:%s, the content is sha256:%s" % (fake, real) in p.stderr
    assert store_leftovers(state) == []


def test_failed_import_leaves_nothing(images, state):
    good = images["oci-archive"]
    bad = os.path.join(state, "truncated.tar")
    data = open(good, "rb").read()
    open(bad, "wb").write(data[:len(data) * 2 // 3])
    p = rund_image(state, "import", bad, check=False)
    assert p.returncode == 1 and p.stderr, p.stderr
    assert store_leftovers(state) == []
    notatar = os.path.join(state, "junk")
    open(notatar, "wb").write(os.urandom(4096))
    p = rund_image(state, "import", notatar, "--name", "junk", check=False)
    assert p.returncode == 1 and "not a readable tar" in p.stderr
    assert store_leftovers(state) == []
    rund_image(state, "import", good)  # the store stays usable


def test_concurrent_imports(images, state):
    procs = [subprocess.Popen([RUND, "image", "import", images[f], "--state-dir", state],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in ("oci-archive", "oci-archive", "layout")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert not SANITIZER_RE.search(err), err
    assert len({o.strip() for o, _ in outs}) == 1
    assert len(layer_dirs(state)) == 1
    assert store_leftovers(state) == [os.path.basename(layer_dirs(state)[0])]
    names = json.loads(rund_image(state, "ls", "--json").stdout)[0]["names"]
    assert sorted(names) == ["bb:latest", "localhost/rr-busybox:1"]


def test_remove_and_gc(images, state):
    img = rund_image(state, "import", images["oci-archive"]).stdout.strip()
    rund_image(state, "import", images["layout"], "--name", "second:2")
    tar = os.path.join(state, "other.tar")
    write_tar(tar, [("only-here", "file", "x")])
    rund_image(state, "import", tar, "--name", "other")
    assert len(layer_dirs(state)) == 2
    rund_image(state, "rm", "second:2")  # an untag: the image has another name
    assert len(layer_dirs(state)) == 2
    p = rund_image(state, "rm", "second:2", check=False)
    assert p.returncode == 1 and 'NOT_FOUND: image "second:2" not found' in p.stderr
    rund_image(state, "rm", "other")
    assert len(layer_dirs(state)) == 1
    rund_image(state, "rm", img)
    assert store_leftovers(state) == []
    assert json.loads(rund_image(state, "ls", "--json").stdout) == []
    # a stray layer (a crash between unpacking and recording) goes at gc
    os.mkdir(os.path.join(state, "images", "layers", "0" * 64))
    os.mkdir(os.path.join(state, "images", "tmp", "crashed-import"))
    assert "1 layers removed" in rund_image(state, "gc").stdout
    assert store_leftovers(state) == []


def two_layers():
    """A lower layer and an upper one that replaces a file and adds one."""
    low = layer_tar([("etc/", "dir", None), ("etc/motd", "file", "low\n"),
                     ("usr/share/", "dir", None), ("usr/share/data", "file", b"\x00" * 5000)])
    high = layer_tar([("etc/motd", "file", "high\n"), ("etc/extra", "file", "x\n")])
    return [low, high]


@pytest.mark.parametrize("comp", ["gzip", "zstd", "mixed"])
@pytest.mark.parametrize("fmt", ["layout", "oci-archive", "docker-archive", "rootfs"])
def test_compressed_layers_each_format(state, fmt, comp):
    """gzip and zstd layers in each of the four formats (docker's diff_ids
    name the inflated tar: the layer is hashed as it inflates)."""
    layers = two_layers()
    comps = ["gzip", "zstd"] if comp == "mixed" else comp
    work = os.path.join(state, "in")
    os.mkdir(work)
    if fmt in ("layout", "oci-archive"):
        src = write_oci_layout(os.path.join(work, "oci"), layers, ref="zz:1", comp=comps)
        if fmt == "oci-archive":
            src = tar_of_dir(src, os.path.join(work, "oci.tar"))
        args = []
    elif fmt == "docker-archive":
        src = write_docker_archive(os.path.join(work, "d.tar"), layers, tag="zz:1", comp=comps)
        args = []
    else:
        if comp == "mixed":
            pytest.skip("a root filesystem tar is one layer")
        src = os.path.join(work, "root.tar." + comp)
        open(src, "wb").write(compress(layers[0], comp))
        args = ["--name", "zz:1"]
    out = json.loads(rund_image(state, "import", src, "--json", *args).stdout)
    assert len(out["ids"]) == 1
    want = 1 if fmt == "rootfs" else 2
    assert out["layers_unpacked"] == want
    dirs = layer_dirs(state)
    assert len(dirs) == want
    motd = sorted(open(os.path.join(d, "etc/motd")).read() for d in dirs
                  if os.path.exists(os.path.join(d, "etc/motd")))
    assert motd == (["low\n"] if fmt == "rootfs" else ["high\n", "low\n"])
    rec = json.loads(rund_image(state, "inspect", "zz:1").stdout)
    assert rec["id"] == out["ids"][0] and rec["format"] == (
        "oci" if fmt == "layout" else fmt)
    if fmt == "docker-archive":
        # keyed by diff_id: the same layers uncompressed are the same layers
        again = write_docker_archive(os.path.join(work, "plain.tar"), layers, tag="zz:2")
        out2 = json.loads(rund_image(state, "import", again, "--json").stdout)
        assert out2["ids"] == out["ids"] and out2["layers_unpacked"] == 0
    assert [n for n in store_leftovers(state) if n.startswith("tmp/")] == []


@pytest.mark.parametrize("comp", [None, "gzip", "zstd"])
def test_docker_archive_diff_id_mismatch(state, comp):
    layers = two_layers()
    lie = ["sha256:" + sha(layers[0]), "sha256:" + sha(b"not the tar")]
    src = write_docker_archive(os.path.join(state, "d.tar"), layers, comp=comp, diff_ids=lie)
    p = rund_image(state, "import", src, check=False)
    assert p.returncode == 1
    assert "DATA_LOSS" in p.stderr, p.stderr
    assert "digest mismatch: want %s, the content is sha256:%s" % (lie[1], sha(layers[1])) \
        in p.stderr, p.stderr
    assert store_leftovers(state) == []


def test_docker_archive_corrupt_compressed_layer(state):
    layers = two_layers()
    src = write_docker_archive(os.path.join(state, "d.tar"), layers, comp="gzip")
    data = bytearray(open(src, "rb").read())
    # flip bytes in the middle of the second layer's gzip stream
    blob = compress(layers[1], "gzip")
    at = bytes(data).find(blob)
    assert at > 0
    for i in range(at + 20, at + 40):
        data[i] ^= 0x55
    open(src, "wb").write(bytes(data))
    p = rund_image(state, "import", src, check=False)
    assert p.returncode == 1
    assert "layer sha256:%s" % sha(layers[1])[:12] in p.stderr, p.stderr
    assert store_leftovers(state) == []
