"""grpc.reflection.v1 / v1alpha and grpc.health.v1 served by rund, checked with
python grpcio as a stock client: list services, descriptors good enough to
build a DescriptorPool (streaming flags included), health Check and Watch.

Stubs are generated from proto/grpc/** with grpc_tools.protoc. The .proto
files are copied under flat names first: a python package named "grpc" would
shadow grpcio itself."""

import os
import shutil
import tempfile

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from conftest import RUND, Rund, gen_grpc_stubs

if not os.path.exists(RUND):
    pytest.skip("rund binary %s does not exist yet (build it, or set RUND)" % RUND,
                allow_module_level=True)

SERVED = ["runrpc.v1.Jobs", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection"]


_STUBS = tempfile.mkdtemp(prefix="rr-refl-stubs-")
_MODS = gen_grpc_stubs(_STUBS)
health_pb, health_grpc = _MODS["rr_health"]
REFLECTION = {"v1": _MODS["rr_reflection_v1"], "v1alpha": _MODS["rr_reflection_v1alpha"]}


def teardown_module(module):
    shutil.rmtree(_STUBS, ignore_errors=True)


class HealthRund(Rund):
    """rund, ready once health Check("") answers (does not need Jobs to work)."""

    READY_CALL = "health Check"

    def ready_probe(self, ch):
        health_grpc.HealthStub(ch).Check(health_pb.HealthCheckRequest(), timeout=2)


@pytest.fixture
def server():
    r = HealthRund()
    try:
        r.start()
        yield r
        r.stop()  # SIGTERM: exit 0 and no sanitizer report
    finally:
        r.kill()
        shutil.rmtree(r.base, ignore_errors=True)


def reflect(server, version, *requests, host=""):
    """Send requests on one ServerReflectionInfo stream; return the responses."""
    pb, pbg = REFLECTION[version]
    stub = pbg.ServerReflectionStub(server.channel())
    reqs = []
    for r in requests:
        kind, value = r
        if kind == "file_containing_extension":
            value = pb.ExtensionRequest(containing_type=value[0], extension_number=value[1])
        reqs.append(pb.ServerReflectionRequest(host=host, **{kind: value}))
    call = stub.ServerReflectionInfo(iter(reqs), timeout=20)
    out = list(call)
    assert call.code() == grpc.StatusCode.OK
    assert len(out) == len(reqs), "one response per request"
    for req, resp in zip(reqs, out):
        assert resp.original_request == req
        assert resp.valid_host == host
    return out


def files_of(resp):
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in resp.file_descriptor_response.file_descriptor_proto]


def pool_for_symbol(server, version, symbol):
    """Build a DescriptorPool from reflection alone, as grpcurl does."""
    first = files_of(reflect(server, version, ("file_containing_symbol", symbol))[0])
    have = {f.name: f for f in first}
    missing = [d for f in first for d in f.dependency if d not in have]
    while missing:  # ask for any dependency not sent yet
        name = missing.pop()
        if name in have:
            continue
        got = files_of(reflect(server, version, ("file_by_filename", name))[0])
        assert got[0].name == name
        for f in got:
            have.setdefault(f.name, f)
            missing += [d for d in f.dependency if d not in have]
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for d in have[name].dependency:
            add(d)
        pool.Add(have[name])
        added.add(name)

    for name in have:
        add(name)
    return first, pool


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize("content", ["*", ""])
def test_list_services(server, version, content):
    resp = reflect(server, version, ("list_services", content))[0]
    assert resp.WhichOneof("message_response") == "list_services_response"
    names = [s.name for s in resp.list_services_response.service]
    for want in SERVED:
        assert want in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_file_containing_symbol_builds_pool(server, version):
    first, pool = pool_for_symbol(server, version, "runrpc.v1.Jobs")
    assert first[0].name == "runrpc/v1/jobs.proto"
    assert first[0].package == "runrpc.v1"
    svc = pool.FindServiceByName("runrpc.v1.Jobs")
    m = svc.methods_by_name
    for name in ["Start", "Stop", "Status", "Logs", "List", "Wait", "Signal", "Exec"]:
        assert name in m
    assert (m["Start"].client_streaming, m["Start"].server_streaming) == (False, False)
    assert (m["Logs"].client_streaming, m["Logs"].server_streaming) == (False, True)
    assert (m["Exec"].client_streaming, m["Exec"].server_streaming) == (True, True)
    assert m["Start"].input_type.full_name == "runrpc.v1.StartRequest"
    assert m["Start"].output_type.full_name == "runrpc.v1.StartResponse"
    # the pool is good enough to build messages
    req = pool.FindMessageTypeByName("runrpc.v1.StartRequest")
    assert "command" in req.fields_by_name


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize("symbol", ["runrpc.v1.Jobs.Start", "runrpc.v1.StartRequest",
                                    "runrpc.v1.Command.EnvEntry", "runrpc.v1.JobState"])
def test_symbols_of_jobs(server, version, symbol):
    resp = reflect(server, version, ("file_containing_symbol", symbol))[0]
    assert files_of(resp)[0].name == "runrpc/v1/jobs.proto"


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_and_health_describe_themselves(server, version):
    _, pool = pool_for_symbol(server, version, "grpc.health.v1.Health")
    watch = pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Watch"]
    assert (watch.client_streaming, watch.server_streaming) == (False, True)
    _, pool = pool_for_symbol(server, version, "grpc.reflection.%s.ServerReflection" % version)
    info = pool.FindServiceByName("grpc.reflection.%s.ServerReflection" % version)
    m = info.methods_by_name["ServerReflectionInfo"]
    assert (m.client_streaming, m.server_streaming) == (True, True)


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_many_requests_on_one_stream(server, version):
    out = reflect(server, version,
                  ("list_services", ""),
                  ("file_by_filename", "runrpc/v1/jobs.proto"),
                  ("file_containing_symbol", "runrpc.v1.Nope"),
                  ("file_by_filename", "nope.proto"),
                  ("file_containing_symbol", "runrpc.v1.Jobs.Exec"),
                  ("all_extension_numbers_of_type", "runrpc.v1.StartRequest"),
                  ("all_extension_numbers_of_type", "runrpc.v1.Nope"),
                  ("file_containing_extension", ("runrpc.v1.StartRequest", 100)),
                  host="example:1")
    kinds = [r.WhichOneof("message_response") for r in out]
    assert kinds == ["list_services_response", "file_descriptor_response", "error_response",
                     "error_response", "file_descriptor_response",
                     "all_extension_numbers_response", "error_response", "error_response"]
    assert files_of(out[1])[0].name == "runrpc/v1/jobs.proto"
    for i in (2, 3, 6, 7):
        assert out[i].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "runrpc.v1.Nope" in out[2].error_response.error_message
    # the requested file is always sent, even when already sent on this stream
    assert files_of(out[4])[0].name == "runrpc/v1/jobs.proto"
    ext = out[5].all_extension_numbers_response
    assert ext.base_type_name == "runrpc.v1.StartRequest"
    assert list(ext.extension_number) == []


def test_health_check(server):
    stub = health_grpc.HealthStub(server.channel())
    resp = stub.Check(health_pb.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == health_pb.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as ei:
        stub.Check(health_pb.HealthCheckRequest(service="nope"), timeout=10)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in ei.value.details()


def test_health_watch(server):
    stub = health_grpc.HealthStub(server.channel())
    call = stub.Watch(health_pb.HealthCheckRequest(service=""), timeout=20)
    first = next(call)
    assert first.status == health_pb.HealthCheckResponse.SERVING
    call.cancel()
    with pytest.raises(grpc.RpcError) as ei:
        next(call)
    assert ei.value.code() == grpc.StatusCode.CANCELLED

    # an unknown service is not an error for Watch: SERVICE_UNKNOWN, call stays open
    call = stub.Watch(health_pb.HealthCheckRequest(service="nope"), timeout=20)
    assert next(call).status == health_pb.HealthCheckResponse.SERVICE_UNKNOWN
    assert call.is_active()
    call.cancel()
    # and the server still serves after the cancellations
    assert stub.Check(health_pb.HealthCheckRequest(), timeout=10).status == \
        health_pb.HealthCheckResponse.SERVING
