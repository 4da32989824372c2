#!/usr/bin/python3
"""pty-cli: an interactive shell whose every typed line runs through
commander.Commander/Shell on a runrpc (started on a pipe behind a socat
bridge, or the one at ADDR). Output is streamed as it comes; the prompt
shows the last exit status; `cd DIR` changes the directory the next lines
run in (checked by the server: a bad one is its NOT_FOUND); `exit` or EOF
(Ctrl-D) ends. Ctrl-C cancels the running line (the server kills it).

    /usr/bin/python3 examples/pty_cli.py [unix:/path/to/runrpc.sock]
"""

import os
import sys
import tempfile

import grpc

from runrpc_shim import SocatBridge, Stubs, cpb


def run_line(stubs, line, cwd):
    """Stream one line's output; returns its exit code (or None)."""
    call = stubs.commander.Shell(iter([cpb.Command(shell=line, cwd=cwd, stdin_eof=True)]))
    code = None
    try:
        for m in call:
            kind = m.WhichOneof("kind")
            if kind == "stdout":
                sys.stdout.buffer.write(m.stdout)
                sys.stdout.flush()
            elif kind == "stderr":
                sys.stderr.buffer.write(m.stderr)
                sys.stderr.flush()
            elif kind == "exit":
                code = m.exit.code
    except KeyboardInterrupt:
        call.cancel()
        print("^C")
        return 130
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            print("pty-cli: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 127 if e.code() == grpc.StatusCode.NOT_FOUND else 1
    return code


def change_dir(stubs, arg, cwd):
    target = os.path.normpath(os.path.join(cwd, os.path.expanduser(arg or "/")))
    # the server decides whether it exists: `true` run there
    if run_line(stubs, "true", target) == 0:
        return target
    return cwd


def main():
    with tempfile.TemporaryDirectory(prefix="pty-cli-", dir="/tmp") as d:
        bridge = None
        addr = sys.argv[1] if len(sys.argv) > 1 else None
        if not addr:
            bridge = SocatBridge(d, stderr=open(os.devnull, "wb"))
            addr = bridge.addr
        stubs = Stubs(grpc.insecure_channel(addr))
        cwd, last = "/", 0
        while True:
            try:
                line = input("runrpc %s [%d]$ " % (cwd, last)).strip()
            except EOFError:
                print()
                break
            except KeyboardInterrupt:
                print()
                continue
            if not line:
                continue
            if line == "exit":
                break
            if line == "cd" or line.startswith("cd "):
                cwd = change_dir(stubs, line[2:].strip(), cwd)
                continue
            last = run_line(stubs, line, cwd)
            last = last if last is not None else 1
        stubs.channel.close()
        if bridge:
            bridge.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
