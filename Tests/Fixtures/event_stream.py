#!/usr/bin/python3
"""A long-lived deskgate client for end-to-end tests, as a *separate process* (its own pid,
executable and script): optionally asks for one snapshot (which may prompt a person), then
subscribes to events and prints every line the daemon sends, flushed, until killed.

    event_stream.py SOCKET [--snapshot APP] EVENT_TYPE...

stdout: one JSON message per line exactly as received (replies and `event` notifications),
preceded by "subscribed" once the subscription was answered.
"""
import json
import socket
import sys

args = sys.argv[1:]
path = args.pop(0)
snapshot_app = None
if args and args[0] == "--snapshot":
    args.pop(0)
    snapshot_app = args.pop(0)
types = args

s = socket.socket(socket.AF_UNIX)
s.connect(path)
reader = s.makefile("rb")


def send(message):
    s.sendall((json.dumps(message) + "\n").encode())


def reply(expected_id):
    while True:
        line = reader.readline()
        if not line:
            sys.exit(1)
        print(line.decode().rstrip("\n"), flush=True)
        message = json.loads(line)
        if message.get("id") == expected_id:
            return message


if snapshot_app is not None:
    send({"jsonrpc": "2.0", "id": 1, "method": "tree.snapshot", "params": {"app": snapshot_app, "max_depth": 1}})
    reply(1)
send({"jsonrpc": "2.0", "id": 2, "method": "events.subscribe", "params": {"events": types}})
reply(2)
print("subscribed", flush=True)
for line in reader:
    print(line.decode().rstrip("\n"), flush=True)
