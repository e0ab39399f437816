#!/usr/bin/python3
"""A scripted prompt helper for end-to-end tests, run as a process of its own (its own pid,
cgroup and start time, which decide whether the daemon sends it a client's prompts).

    prompt_helper.py SOCKET [--answer CHOICE]... [--hold FILE] [--spawn CMD [ARG]...]

Registers with `agent.register` and prints, one flushed line each:
    registered PID           registration accepted
    refused JSON             registration refused (the error object); exits 3
    prompt JSON              an agent.prompt's params
    cancel PROMPT_ID         an agent.cancel
    spawned PID              after --spawn (PID of `setsid -f`, not of CMD)
Answers prompts with the --answer choices in order ("none": leave that prompt unanswered),
then "deny". With --hold, each answer waits until FILE exists (the test changes something while the
person reads the prompt, then creates FILE). --spawn starts CMD after registering, detached with `setsid -f` as a helper's
dialog could be; its output goes to this process's stdout. Exits when the daemon hangs up.
"""
import json
import os
import socket
import subprocess
import sys
import time

args = sys.argv[1:]
path = args.pop(0)
answers = []
hold = None
spawn = None
while args:
    arg = args.pop(0)
    if arg == "--answer":
        answers.append(args.pop(0))
    elif arg == "--hold":
        hold = args.pop(0)
    elif arg == "--spawn":
        spawn, args = args, []
    else:
        sys.exit(f"prompt_helper.py: unknown argument {arg}")


def say(*parts):
    print(*parts, flush=True)


s = socket.socket(socket.AF_UNIX)
s.connect(path)
reader = s.makefile("rb")


def send(message):
    s.sendall((json.dumps(message) + "\n").encode())


send({"jsonrpc": "2.0", "id": "register", "method": "agent.register"})
for raw in reader:
    message = json.loads(raw)
    if message.get("id") == "register":
        if "result" in message:
            say("registered", os.getpid())
            break
        say("refused", json.dumps(message.get("error")))
        sys.exit(3)
else:
    say("refused", json.dumps({"message": "the daemon closed the connection"}))
    sys.exit(3)

if spawn:
    child = subprocess.Popen(["/usr/bin/setsid", "-f"] + spawn, stdin=subprocess.DEVNULL)
    child.wait()  # setsid -f returns at once; CMD lives on, re-parented away from this process
    say("spawned", child.pid)

for raw in reader:
    message = json.loads(raw)
    method = message.get("method")
    if method == "agent.prompt":
        say("prompt", json.dumps(message.get("params")))
        choice = answers.pop(0) if answers else "deny"
        while hold is not None and not os.path.exists(hold):
            time.sleep(0.02)
        if choice != "none":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"choice": choice}})
    elif method == "agent.cancel":
        say("cancel", (message.get("params") or {}).get("prompt_id"))
    elif "id" in message and method is not None:
        send({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "method not found"}})
