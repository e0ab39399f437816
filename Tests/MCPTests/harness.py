"""Shared pieces of the deskgate-mcp tests: a real deskgated on a temp socket, a raw JSON-RPC
client of it, a real MCP client (the `mcp` package) driving deskgate-mcp, and a tiny runner."""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import mcp
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DESKGATE_BUILD_DIR", os.path.join(ROOT, ".build", "debug"))
DESKGATED = os.path.join(BUILD, "deskgated")
MCP_BIN = os.path.join(BUILD, "deskgate-mcp")
CLIENT_NAME = "deskgate-mcp-tests"
GTK3_APP = "deskgate-fixture-gtk3"

# The policy the fixture tests run under: deskgate-mcp may observe, read and operate the GTK3
# fixture, and write only to its Name and Password fields and its spin button; everything else
# (e.g. the Email field) falls to `default = "deny"`. The test process itself (python) may read
# the audit log.
POLICY = f"""
default = "deny"

[[rule]]
id = "mcp-observe"
effect = "allow"
actions = ["observe", "read", "act"]
client_exe = "*deskgate-mcp"
app = "{GTK3_APP}"

[[rule]]
id = "mcp-write-name"
effect = "allow"
actions = ["write"]
client_exe = "*deskgate-mcp"
app = "{GTK3_APP}"
name = "Name"

[[rule]]
id = "mcp-write-password"
effect = "allow"
actions = ["write"]
client_exe = "*deskgate-mcp"
app = "{GTK3_APP}"
name = "Password"

[[rule]]
id = "mcp-write-spin"
effect = "allow"
actions = ["write"]
client_exe = "*deskgate-mcp"
app = "{GTK3_APP}"
role = "spin button"

[[rule]]
id = "tests-audit"
effect = "allow"
actions = ["admin"]
client_exe = "*python*"
"""


class Daemon:
    """A deskgated on a private socket with its own state, config and admin policy dirs."""

    def __init__(self, policy=POLICY, socket_path=None):
        self.dir = tempfile.mkdtemp(prefix="dg-mcp-test-")
        self.socket = socket_path or os.path.join(self.dir, "d.sock")
        for d in ("state", "config", "system"):
            os.makedirs(os.path.join(self.dir, d), mode=0o700)
        if policy is not None:
            with open(os.path.join(self.dir, "config", "policy.toml"), "w") as f:
                f.write(policy)
        self.log_path = os.path.join(self.dir, "deskgated.log")
        self.proc = None

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [DESKGATED, "--socket", self.socket, "--state-dir", os.path.join(self.dir, "state"),
             "--config-dir", os.path.join(self.dir, "config"),
             "--system-policy-dir", os.path.join(self.dir, "system"), "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"deskgated exited with {self.proc.returncode}: {self.log()}")
            try:
                with contextlib.closing(socket.socket(socket.AF_UNIX)) as s:
                    s.connect(self.socket)
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("deskgated did not start listening: " + self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def rpc(socket_path, method, params=None, timeout=30):
    """One JSON-RPC call on a fresh connection; returns the whole response object."""
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as s:
        s.settimeout(timeout)
        s.connect(socket_path)
        msg = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            msg["params"] = params
        s.sendall((json.dumps(msg) + "\n").encode())
        return json.loads(s.makefile("rb").readline())


@contextlib.asynccontextmanager
async def mcp_client(socket_path, name=CLIENT_NAME, mode="auto", stderr_path=None):
    """A real MCP client (python `mcp` package) running deskgate-mcp as its stdio server."""
    errlog = open(stderr_path or os.devnull, "a")
    params = StdioServerParameters(command=MCP_BIN, args=["--socket", socket_path, "--log-level", "debug"],
                                   env={"DESKGATE_SOCKET": "/nonexistent/not-this.sock"})
    try:
        async with Client(stdio_client(params, errlog=errlog), client_info=mcp.Implementation(name=name, version="1.0"),
                          mode=mode, read_timeout_seconds=120) as client:
            yield client
    finally:
        errlog.close()


def text_of(result):
    """The text of a CallToolResult (all text blocks joined)."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


class FixtureApp:
    """One more GTK3 fixture app (Tests/Fixtures/gtk3_app.py) on the running headless desktop,
    e.g. with hostile text or many rows; its stdout goes to a log file."""

    def __init__(self, name, *args, timeout=60):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="dg-mcp-app-")
        self.log_path = os.path.join(self.dir, "app.log")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "Tests", "Fixtures", "gtk3_app.py"), "--name", name, *args],
            stdin=subprocess.DEVNULL, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while "ready" not in self.log().splitlines():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fixture {name!r} did not start: {self.log()[-2000:]}")
            time.sleep(0.05)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- runner --------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Expectation(AssertionError):
    pass


def expect(condition, message):
    if not condition:
        raise Expectation(message)


def _leaves(e):
    """The innermost exceptions of (nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            yield from _leaves(inner)
    else:
        yield e


def run(argv):
    selected = [t for t in TESTS if not argv or any(a in t.__name__ for a in argv)]
    passed, failed = 0, []
    for t in selected:
        start = time.monotonic()
        try:
            if asyncio.iscoroutinefunction(t):
                asyncio.run(t())
            else:
                t()
            passed += 1
            print(f"PASS {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
        except BaseException as e:  # noqa: BLE001 - report every failure, keep going
            if isinstance(e, KeyboardInterrupt):
                raise
            failed.append(t.__name__)
            print(f"FAIL {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
            leaves = list(_leaves(e))
            if all(isinstance(x, Expectation) for x in leaves):
                detail = "".join(f"  {x}\n" for x in leaves)
            else:
                detail = "".join(traceback.format_exception(e))
            print(detail, end="", flush=True)
    print(f"{passed} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed or not selected else 0
