#!/usr/bin/python3
"""A client whose executable the daemon cannot read: it makes itself non-dumpable
(prctl(PR_SET_DUMPABLE, 0)), which makes /proc/PID/exe unreadable to every process without
CAP_SYS_PTRACE, even of the same uid. Run it as the (unprivileged) daemon's uid.

    nondumpable_call.py [--dumpable] SOCKET METHOD [PARAMS_JSON]...

Before connecting it checks from a forked child (same uid, no capabilities, like the daemon)
that readlink(/proc/PARENT/exe) really fails, and prints "exe hidden" or "exe visible: PATH".
Then it sends each METHOD [PARAMS_JSON] pair as a request on one connection and prints each reply
line. --dumpable skips the prctl (the control case).
"""
import ctypes
import json
import os
import socket
import sys

PR_SET_DUMPABLE = 4
args = sys.argv[1:]
dumpable = args and args[0] == "--dumpable"
if dumpable:
    args = args[1:]
path = args.pop(0)
calls = []
while args:
    method = args.pop(0)
    params = json.loads(args.pop(0)) if args and args[0].startswith("{") else None
    calls.append((method, params))

if not dumpable:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.exit(f"prctl failed: errno {ctypes.get_errno()}")

parent = os.getpid()
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    try:
        result = "exe visible: " + os.readlink(f"/proc/{parent}/exe")
    except OSError as error:
        result = f"exe hidden ({error.strerror})"
    os.write(w, result.encode())
    os._exit(0)
os.close(w)
seen = b""
while chunk := os.read(r, 4096):
    seen += chunk
os.waitpid(child, 0)
print(seen.decode(), flush=True)

s = socket.socket(socket.AF_UNIX)
s.connect(path)
reader = s.makefile()
for index, (method, params) in enumerate(calls):
    request = {"jsonrpc": "2.0", "id": index + 1, "method": method}
    if params is not None:
        request["params"] = params
    s.sendall((json.dumps(request) + "\n").encode())
    print(reader.readline(), end="", flush=True)
