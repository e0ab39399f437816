#!/usr/bin/python3
"""A scripted agent for end-to-end tests of task sessions, as a *separate process* (its own pid
and start time, which a task is bound to): makes the calls it is given in order on one
connection, prints each reply, then stays connected (holding its tasks) until killed.

    task_agent.py SOCKET CALLS_JSON

CALLS_JSON is a list of [method, params] pairs; a params value "$task" is replaced by the task_id
of the last task.begin reply. stdout, one flushed line each: "reply N JSON" per call, then "done".
"""
import json
import socket
import sys
import time

path, calls = sys.argv[1], json.loads(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
reader = s.makefile("rb")
task_id = None


def fill(value):
    if value == "$task":
        return task_id
    if isinstance(value, dict):
        return {k: fill(v) for k, v in value.items()}
    return value


for n, (method, params) in enumerate(calls):
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": fill(params)}) + "\n").encode())
    while True:
        line = reader.readline()
        if not line:
            print("closed", flush=True)
            sys.exit(1)
        message = json.loads(line)
        if message.get("id") == n:
            break
    if method == "task.begin" and "result" in message:
        task_id = message["result"]["task_id"]
    print("reply", n, json.dumps(message), flush=True)
print("done", flush=True)
while True:
    time.sleep(3600)
