#!/usr/bin/python3
"""seccomp_exec.py: run a command under the system-call filter a systemd unit declares.

No user manager runs on the test machines, so this applies what the unit's
SystemCallFilter= / SystemCallErrorNumber= / SystemCallArchitectures=native and
RestrictAddressFamilies= would: the allow list is expanded with `systemd-analyze
syscall-filter` (the same tables systemd uses), loaded with libseccomp (python3-seccomp),
and then the command is exec'd. RestrictAddressFamilies= is applied as systemd does it, a
seccomp rule on socket()'s first argument: a family outside the list fails with
EAFNOSUPPORT. socketpair() gets the same rule (systemd leaves it alone because it only
makes AF_UNIX pairs; checking it costs nothing and proves the same).

  seccomp_exec.py --unit systemd/deskgate.service [--kill] -- COMMAND ARGS...

--kill makes any call outside the list kill the process (SIGSYS) instead of failing with
the unit's errno, so a test learns about every call the filter would refuse, not only the
ones that break something visibly.
"""
import argparse
import errno
import os
import socket
import subprocess
import sys

import seccomp


def unit_settings(path):
    filters, errno_name, families = [], None, None
    with open(path) as unit:
        for line in unit:
            line = line.strip()
            if line.startswith("SystemCallFilter="):
                value = line.split("=", 1)[1].split()
                if value and value[0].startswith("~"):
                    sys.exit(f"{path}: deny-list filters are not supported here")
                filters += value
            elif line.startswith("SystemCallErrorNumber="):
                errno_name = line.split("=", 1)[1].strip()
            elif line.startswith("RestrictAddressFamilies="):
                value = line.split("=", 1)[1].split()
                if value and value[0].startswith("~"):
                    sys.exit(f"{path}: deny-list address families are not supported here")
                families = (families or []) + value
    if not filters:
        sys.exit(f"{path}: no SystemCallFilter=")
    return filters, errno_name, families


def expand(names, seen=None):
    """Expands @groups recursively with systemd-analyze, as systemd does."""
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if not name.startswith("@"):
            calls.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                             capture_output=True, text=True).stdout
        members = [l.strip() for l in out.splitlines()[1:] if l.strip() and not l.strip().startswith("#")]
        calls |= expand(members, seen)
    return calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unit", required=True)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("no command")
    names, errno_name, families = unit_settings(args.unit)
    # systemd adds @default to every allow list.
    allowed = expand(["@default"] + names)
    default = seccomp.KILL_PROCESS if args.kill else seccomp.ERRNO(getattr(errno, errno_name or "EPERM"))
    flt = seccomp.SyscallFilter(defaction=default)  # native architecture only, like SystemCallArchitectures=native
    resolved = 0
    family_calls = {"socket", "socketpair"} if families is not None else set()
    for call in sorted(family_calls & allowed):
        numbers = [getattr(socket, name) for name in families]
        for number in numbers:
            flt.add_rule(seccomp.ALLOW, call, seccomp.Arg(0, seccomp.EQ, number))
        # One rule per allowed family above; everything else fails as systemd makes it fail.
        others = [seccomp.Arg(0, seccomp.NE, number) for number in numbers]
        flt.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), call, *others)
    for name in sorted(allowed - family_calls):
        try:
            flt.add_rule(seccomp.ALLOW, name)
            resolved += 1
        except (ValueError, RuntimeError, OSError):
            pass  # not a system call on this architecture (arm_fadvise64_64 on x86-64, …)
    print(f"seccomp_exec: {resolved} system calls allowed from {' '.join(names)}"
          f" ({'kill' if args.kill else errno_name or 'EPERM'} otherwise)"
          + (f"; socket families: {' '.join(families)} (EAFNOSUPPORT otherwise)" if families is not None else ""),
          file=sys.stderr, flush=True)
    flt.load()  # sets no_new_privs too, as NoNewPrivileges=yes does
    os.execv(command[0], command)


main()
