#!/usr/bin/python3
"""Wait until a real app shows a document in its accessibility tree (scripts/headless-desktop.sh).

    /usr/bin/python3 Tests/Fixtures/app_ready.py APPNAME --url URL [--timeout SEC]
    /usr/bin/python3 Tests/Fixtures/app_ready.py APPNAME --window PREFIX --document ROLE [--timeout SEC]

A browser registers with the AT-SPI registry long before its page is loaded, and LibreOffice
shows its window before the document is in it, so "registered" is not "ready". Ready means:

  --url URL        a `document web` whose Document attribute DocURL (Firefox) or URI (Chromium)
                   is URL, not `busy`, with at least one child (the page's content is there);
  --window PREFIX  a frame whose name starts with PREFIX holding a document of role ROLE
  --document ROLE  (e.g. `document text`, `document spreadsheet`) with at least one child.

Prints `ready APPNAME SECONDS` and exits 0, or prints what it saw and exits 1 after --timeout
(default 60). The walk never descends into menus, tool bars or containers that manage their
descendants (a Calc sheet claims 2^31 children), nor below the documents it looks for.
"""
import argparse
import sys
import time

import pyatspi

PRUNED_ROLES = {"menu bar", "menu", "tool bar", "status bar", "page tab list", "table", "tree table", "list box"}
DOCUMENT_ROLES = {"document web", "document frame", "document text", "document spreadsheet",
                  "document presentation", "document email"}


def states(acc):
    return {pyatspi.stateToString(s) for s in acc.getState().getStates()}


def documents(root, depth=0, out=None):
    """Every document below `root` (not below a document), pruned as described above."""
    if out is None:
        out = []
    if depth > 40:
        return out
    try:
        role = root.getRoleName()
        if role in DOCUMENT_ROLES:
            out.append(root)
            return out
        if depth > 0 and (role in PRUNED_ROLES or "manages descendants" in states(root)):
            return out
        for child in root:
            if child is not None:
                documents(child, depth + 1, out)
    except Exception:  # an object that went away while we walked: look again next round
        pass
    return out


def document_url(doc):
    try:
        for attribute in doc.queryDocument().getAttributes():
            key, _, value = attribute.partition(":")
            if key in ("DocURL", "URI"):
                return value
    except Exception:
        pass
    return None


def apps_named(name):
    return [a for a in pyatspi.Registry.getDesktop(0) if a is not None and a.name == name]


def check(args):
    """(ready, what was seen)."""
    seen = []
    for app in apps_named(args.app):
        if args.url:
            for doc in documents(app):
                url = document_url(doc)
                seen.append(f"{doc.getRoleName()} {doc.name!r} url={url!r}")
                if url == args.url and "busy" not in states(doc) and doc.childCount > 0:
                    return True, seen
        else:
            for window in app:
                if window is None:
                    continue
                seen.append(f"{window.getRoleName()} {window.name!r}")
                if not window.name.startswith(args.window):
                    continue
                for doc in documents(window):
                    seen.append(f"  {doc.getRoleName()} {doc.name!r} children={doc.childCount}")
                    if doc.getRoleName() == args.document and doc.childCount > 0:
                        return True, seen
    if not apps_named(args.app):
        seen.append(f"{args.app} not registered; registered: {[a.name for a in pyatspi.Registry.getDesktop(0) if a]}")
    return False, seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("--url")
    ap.add_argument("--window")
    ap.add_argument("--document")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    if bool(args.url) == bool(args.window) or bool(args.window) != bool(args.document):
        ap.error("give --url, or --window with --document")
    start = time.monotonic()
    while True:
        ready, seen = check(args)
        if ready:
            print(f"ready {args.app} {time.monotonic() - start:.2f}", flush=True)
            return 0
        if time.monotonic() - start > args.timeout:
            print(f"app_ready: {args.app} not ready after {args.timeout:.0f}s; saw:", file=sys.stderr)
            for line in seen[-20:]:
                print(f"  {line}", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
