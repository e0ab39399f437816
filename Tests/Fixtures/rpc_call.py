#!/usr/bin/python3
"""A minimal deskgate client used by end-to-end tests as a *separate process* (its own pid and
executable), e.g. so that the test process itself can act as the prompt helper.

    rpc_call.py SOCKET METHOD [PARAMS_JSON]         prints the JSON-RPC reply line
    rpc_call.py --label LABEL SOCKET METHOD [PARAMS_JSON]
                                                    session.hello with LABEL first, then as above
    rpc_call.py --exec-socat SOCKET METHOD PARAMS   connects, then exec()s socat on the same
                                                    connection and sends the request from there
"""
import json
import os
import socket
import sys

args = sys.argv[1:]
exec_socat = False
label = None
if args and args[0] == "--label":
    label = args[1]
    args = args[2:]
if args and args[0] == "--exec-socat":
    exec_socat = True
    args = args[1:]
path, method = args[0], args[1]
params = json.loads(args[2]) if len(args) > 2 else None
request = {"jsonrpc": "2.0", "id": 1, "method": method}
if params is not None:
    request["params"] = params
line = json.dumps(request) + "\n"

s = socket.socket(socket.AF_UNIX)
s.connect(path)
if exec_socat:
    # Make sure the daemon has identified this connection as python3 (one round trip), then
    # hand the connection to another program.
    s.sendall(b'{"jsonrpc":"2.0","id":0,"method":"session.whoami"}\n')
    reader = s.makefile("rb", buffering=0)
    whoami = b""
    while not whoami.endswith(b"\n"):
        byte = reader.read(1)
        if not byte:
            break
        whoami += byte
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    r, w = os.pipe()
    os.write(w, line.encode())
    os.close(w)
    os.dup2(r, 0)
    os.execv("/usr/bin/socat", ["socat", "-t20", "-", "FD:3"])
replies = s.makefile()
if label is not None:
    hello = {"jsonrpc": "2.0", "id": 0, "method": "session.hello", "params": {"client": label}}
    s.sendall((json.dumps(hello) + "\n").encode())
    replies.readline()
s.sendall(line.encode())
print(replies.readline(), end="", flush=True)
