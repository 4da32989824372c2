#!/usr/bin/python3
"""A stock grpcio client that knows runrpc's API only through reflection.

runrpc serves gRPC on a pipe (socat bridges a unix socket to its
stdin/stdout); this client asks grpc.reflection.v1alpha for the services,
fetches the file that declares commander.Commander, builds the message
classes from those descriptors at run time and runs a command with
Commander/Shell. Nothing of proto/shim/ is compiled in: only grpc's own
reflection protocol (its .proto, from proto/grpc/) is.

    RUNRPC=/usr/local/bin/runrpc /usr/bin/python3 examples/reflection_client.py [CMD ARGS...]
"""

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("RUNRPC_PROTO_DIR") or os.path.join(HERE, "..", "proto")
RUNRPC = os.environ.get("RUNRPC") or shutil.which("runrpc") or "runrpc"


def reflection_stubs(tmp):
    """grpc's reflection protocol (not runrpc's API), under a flat name."""
    from grpc_tools import protoc
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    shutil.copy(os.path.join(PROTO_DIR, "grpc/reflection/v1alpha/reflection.proto"),
                os.path.join(src, "rr_reflection_v1alpha.proto"))
    if protoc.main(["protoc", "-I" + src, "--python_out=" + tmp, "--grpc_python_out=" + tmp,
                    os.path.join(src, "rr_reflection_v1alpha.proto")]) != 0:
        raise RuntimeError("cannot compile reflection.proto")
    sys.path.insert(0, tmp)
    return (importlib.import_module("rr_reflection_v1alpha_pb2"),
            importlib.import_module("rr_reflection_v1alpha_pb2_grpc"))


def ask(stub, pb, **req):
    return next(stub.ServerReflectionInfo(iter([pb.ServerReflectionRequest(**req)]), timeout=30))


def load_service(stub, pb, pool, service):
    """Add the file declaring service and its dependencies to pool."""
    resp = ask(stub, pb, file_containing_symbol=service)
    if resp.HasField("error_response"):
        raise RuntimeError("reflection: %s" % resp.error_response.error_message)
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in resp.file_descriptor_response.file_descriptor_proto]
    pending = {f.name: f for f in files}
    while pending:  # dependencies first
        for name, f in list(pending.items()):
            if all(d not in pending for d in f.dependency):
                try:
                    pool.Add(f)
                except TypeError:  # already there (a well-known type)
                    pass
                del pending[name]
    return pool.FindServiceByName(service)


def main():
    argv = sys.argv[1:] or ["uname", "-sr"]
    with tempfile.TemporaryDirectory(prefix="reflclient-", dir="/tmp") as d:
        rpb, rpb_grpc = reflection_stubs(d)
        sock = os.path.join(d, "runrpc.sock")
        socat = subprocess.Popen(["socat", "UNIX-LISTEN:" + sock, "EXEC:%s,pipes" % RUNRPC],
                                 start_new_session=True)
        while not os.path.exists(sock):  # then grpcio retries until it listens
            time.sleep(0.01)
        ch = grpc.insecure_channel("unix:" + sock)
        grpc.channel_ready_future(ch).result(timeout=30)
        stub = rpb_grpc.ServerReflectionStub(ch)
        names = [s.name for s in ask(stub, rpb, list_services="").list_services_response.service]
        print("services: " + ", ".join(names))
        pool = descriptor_pool.DescriptorPool()
        svc = load_service(stub, rpb, pool, "commander.Commander")
        shell = svc.methods_by_name["Shell"]
        factory = message_factory.MessageFactory(pool)
        Command = factory.GetPrototype(shell.input_type)
        Output = factory.GetPrototype(shell.output_type)
        print("method: /%s/%s (%s) -> stream %s" % (svc.full_name, shell.name,
                                                   shell.input_type.full_name,
                                                   shell.output_type.full_name))
        call = ch.stream_stream("/%s/%s" % (svc.full_name, shell.name),
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=Output.FromString)
        code = None
        for out in call(iter([Command(argv=argv)]), timeout=60):
            kind = out.WhichOneof("kind")
            if kind == "stdout":
                sys.stdout.write(out.stdout.decode("utf-8", "replace"))
            elif kind == "stderr":
                sys.stderr.write(out.stderr.decode("utf-8", "replace"))
            elif kind == "exit":
                code = out.exit.code
        sys.stdout.flush()
        print("exit %s" % code)
        ch.close()
        socat.wait(timeout=20)
        return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
