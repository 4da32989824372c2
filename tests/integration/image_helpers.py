"""Images written by the tests themselves (no umoci or skopeo): layer tars
from a list of members, compressed with gzip or zstd, laid out as an OCI
image layout, an oci-archive or a docker-archive, with any image config."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

MT_LAYER = {None: "application/vnd.oci.image.layer.v1.tar",
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def layer_tar(members):
    """Bytes of a tar of members: (name, kind, payload), kind one of file,
    dir, symlink, hardlink, whiteout (payload ignored), opaque (a directory's
    .wh..wh..opq), hostfile (payload: a host path copied in, mode kept)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload in members:
            data = None
            if kind == "whiteout":
                d, b = os.path.split(name)
                name, kind, payload = os.path.join(d, ".wh." + b), "file", b""
            elif kind == "opaque":
                name, kind, payload = os.path.join(name, ".wh..wh..opq"), "file", b""
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755 if kind in ("dir", "hostfile") else 0o644
            ti.mtime = 1700000000
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                ti.size = len(data)
            elif kind == "hostfile":
                data = open(payload, "rb").read()
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def busybox_members(applets=("sh", "id", "ls", "cat", "echo", "test", "pwd", "sort", "env", "find",
                             "tr", "readlink", "sleep", "true")):
    """A static busybox at /bin/busybox with a few applet links."""
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox-static is not installed")
    out = subprocess.run(["file", "-L", bb], capture_output=True, text=True).stdout \
        if shutil.which("file") else "statically"
    if "dynamically" in out:
        pytest.skip("busybox is not static")
    members = [("bin/", "dir", None), ("bin/busybox", "hostfile", bb)]
    members += [("bin/" + a, "symlink", "busybox") for a in applets]
    members += [(d + "/", "dir", None) for d in ("etc", "proc", "dev", "sys", "tmp")]
    return members


def compress(data, how):
    if how is None:
        return data
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("zstd is not installed")
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                              check=True).stdout
    raise ValueError(how)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def image_config(layers, config=None):
    """An OCI image config (bytes) for uncompressed layer tars."""
    return json.dumps({"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
                       "os": "linux", "config": config or {},
                       "rootfs": {"type": "layers",
                                  "diff_ids": ["sha256:" + sha(t) for t in layers]}},
                      sort_keys=True).encode()


def write_oci_layout(path, layers, config=None, ref="test:1", comp=None):
    """layers: uncompressed tars (bottom first); comp: None, "gzip", "zstd"
    or a list of those per layer. Returns path."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        d = sha(b)
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(b)
        return d
    comps = comp if isinstance(comp, list) else [comp] * len(layers)
    descs = []
    for t, c in zip(layers, comps):
        blob = compress(t, c)
        descs.append({"mediaType": MT_LAYER[c], "digest": "sha256:" + put(blob),
                      "size": len(blob)})
    cfg = image_config(layers, config)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + put(cfg), "size": len(cfg)},
                      "layers": descs}).encode()
    md = put(man)
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md,
            "size": len(man), "annotations": {"org.opencontainers.image.ref.name": ref}}]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return path


def tar_of_dir(src, path):
    """The files of directory src as the tar path (an oci-archive of a layout)."""
    with tarfile.open(path, "w") as t:
        for name in sorted(os.listdir(src)):
            t.add(os.path.join(src, name), arcname=name)
    return path


def write_docker_archive(path, layers, config=None, tag="localhost/test:1", comp=None,
                         diff_ids=None):
    """A docker-archive (docker save's layout) whose layer files are
    compressed as comp says; diff_ids (default: the right ones) may lie."""
    comps = comp if isinstance(comp, list) else [comp] * len(layers)
    cfg = json.loads(image_config(layers, config))
    if diff_ids:
        cfg["rootfs"]["diff_ids"] = diff_ids
    cfg = json.dumps(cfg, sort_keys=True).encode()
    files = {sha(cfg) + ".json": cfg}
    names = []
    for i, (t, c) in enumerate(zip(layers, comps)):
        name = "%s/layer.tar" % sha(t)
        files[name] = compress(t, c)
        names.append(name)
    files["manifest.json"] = json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": [tag],
                                          "Layers": names}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path
