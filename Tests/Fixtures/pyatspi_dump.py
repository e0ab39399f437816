#!/usr/bin/python3
"""Walk one application's accessibility tree with pyatspi, the way dogtail and OSWorld do.

    /usr/bin/python3 Tests/Fixtures/pyatspi_dump.py APPNAME [--json] [--passes N] [--no-nodes]
                                                  [--wait SEC] [--index I]

Default libatspi settings (no cache mask): for each node reads name, getRoleName() and getState(),
then recurses into its children (depth first, pre-order). With --json prints
    {"app": NAME, "nodes": [{"role", "name", "depth", "states"}], "count": N, "ms": M,
     "passes_ms": [...]}
where "ms" is the first pass's wall time in milliseconds (the walk only, not start-up) and
"states" are pyatspi.stateToString names ("focusable", "multi line", ...), sorted.
Without --json prints an indented outline and the count/time on the last line.
--passes N repeats the walk (each pass timed; nodes come from the first pass).
--index I picks the I-th app of that name (default 0). --wait SEC waits for the app to appear.
Exit status 1 when the app is not found.
"""
import argparse
import json
import sys
import time

import pyatspi


def walk(acc, depth, out, keep):
    name = acc.name
    role = acc.getRoleName()
    states = acc.getState().getStates()
    if keep:
        out.append({
            "role": role,
            "name": name,
            "depth": depth,
            "states": sorted(pyatspi.stateToString(s) for s in states),
        })
    else:
        out.append(None)
    for child in acc:  # pyatspi iterates with getChildAtIndex
        if child is not None:
            walk(child, depth + 1, out, keep)


def find_app(name, index, wait):
    deadline = time.monotonic() + wait
    while True:
        desktop = pyatspi.Registry.getDesktop(0)
        matches = [a for a in desktop if a is not None and a.name == name]
        if len(matches) > index:
            return matches[index], [a.name for a in desktop if a is not None]
        if time.monotonic() >= deadline:
            return None, [a.name for a in desktop if a is not None]
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--no-nodes", action="store_true", help="omit the node list (benchmarks)")
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("--index", type=int, default=0)
    args = ap.parse_args()
    sys.setrecursionlimit(100000)

    app, names = find_app(args.app, args.index, args.wait)
    if app is None:
        print(f"pyatspi_dump: app {args.app!r} not found; registered: {names}", file=sys.stderr)
        return 1

    nodes, passes = [], []
    for p in range(max(1, args.passes)):
        out = []
        t0 = time.perf_counter()
        walk(app, 0, out, keep=(p == 0))
        passes.append(round((time.perf_counter() - t0) * 1000, 2))
        if p == 0:
            nodes = out
    count = len(nodes)
    if args.json:
        result = {"app": args.app, "count": count, "ms": passes[0], "passes_ms": passes}
        if not args.no_nodes:
            result["nodes"] = nodes
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        if not args.no_nodes:
            for n in nodes:
                st = ", ".join(n["states"])
                print(f'{"  " * n["depth"]}- {n["role"]} "{n["name"]}" ({st})')
        print(f"count={count} ms={passes[0]} passes_ms={passes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
