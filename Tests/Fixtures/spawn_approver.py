#!/usr/bin/python3
"""An agent that starts its own approver: connects to deskgated as a client, starts a prompt
helper so that it is *not* its child any more, waits until the helper has registered, then sends
a request that needs a person's approval and prints the reply.

    spawn_approver.py SOCKET MODE HELPER_OUT METHOD [PARAMS_JSON] -- HELPER_CMD [ARG]...

MODE says how the helper is started (its output is appended to the file HELPER_OUT):
    setsid         `setsid -f HELPER_CMD`: forked by setsid, which exits at once
    double-fork    fork, setsid, fork again, the middle process exits, the grandchild execs
    child-cgroup   like double-fork, but the grandchild first moves itself into a new cgroup
                   below this process's own (cgroup2 mount found in /proc/self/mountinfo)
    none           starts nothing: someone else starts the helper; just wait for it
Prints "helper LINE" (the helper's registered/refused line), then the JSON-RPC reply line.
"""
import json
import os
import socket
import subprocess
import sys
import time

args = sys.argv[1:]
split = args.index("--") if "--" in args else len(args)
helper_cmd = args[split + 1:]
args = args[:split]
path, mode, helper_out, method = args[0], args[1], args[2], args[3]
params = json.loads(args[4]) if len(args) > 4 else None


def own_cgroup_directory():
    own = next(line[3:] for line in open("/proc/self/cgroup").read().splitlines() if line.startswith("0::"))
    for line in open("/proc/self/mountinfo"):
        before, _, after = line.partition(" - ")
        if after.split(" ")[0] == "cgroup2":
            fields = before.split(" ")
            root, mount_point = fields[3], fields[4]
            relative = own if root == "/" else own[len(root):]
            return mount_point + ("" if relative == "/" else relative)
    sys.exit("spawn_approver.py: no cgroup2 mount")


def double_fork(cgroup_dir=None):
    out = os.open(helper_out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)  # the grandchild is re-parented away from this agent
        if cgroup_dir:
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as procs:
                procs.write(str(os.getpid()))
        os.dup2(out, 1)
        os.dup2(out, 2)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        # Nothing else inherited (a test harness watches its child's end of a socket pair).
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.execv(helper_cmd[0], helper_cmd)
    os.close(out)
    os.waitpid(middle, 0)


s = socket.socket(socket.AF_UNIX)
s.connect(path)  # identified now: this process's pid, exe, cgroup and start time

if mode == "setsid":
    with open(helper_out, "ab") as out:
        subprocess.run(["/usr/bin/setsid", "-f"] + helper_cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True)
elif mode == "double-fork":
    double_fork()
elif mode == "child-cgroup":
    directory = os.path.join(own_cgroup_directory(), "approver")
    os.mkdir(directory)
    double_fork(directory)
elif mode != "none":
    sys.exit(f"spawn_approver.py: unknown mode {mode}")

deadline = time.monotonic() + 30
status = None
while time.monotonic() < deadline and status is None:
    try:
        for line in open(helper_out).read().splitlines():
            if line.startswith("registered") or line.startswith("refused"):
                status = line
    except FileNotFoundError:
        pass
    time.sleep(0.05)
print("helper", status, flush=True)

request = {"jsonrpc": "2.0", "id": 1, "method": method}
if params is not None:
    request["params"] = params
s.sendall((json.dumps(request) + "\n").encode())
print(s.makefile().readline(), end="", flush=True)
