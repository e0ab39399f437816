#!/usr/bin/python3
"""Read a dialog as a screen reader would: every text on it, through the accessibility tree.

    /usr/bin/python3 Tests/Fixtures/dialog_text.py APPNAME [--wait SEC] [--title TITLE] [--absent]

Waits up to SEC seconds (default 20) for an application named APPNAME (e.g. "zenity") with a
showing window (titled TITLE, with --title) that holds a label, then prints one JSON object:
    {"windows": [title...], "labels": [text...], "cells": [text...], "buttons": [name...],
     "focused": name-or-null}
"labels" are the full texts of its labels (Text interface, else the name), "cells" the table
cells' texts in order, "buttons" the push buttons' names. With --absent, waits instead until no
such application is left and prints {"gone": true}. Exit status 1 on timeout.
"""
import argparse
import json
import sys
import time

import pyatspi


def text_of(acc):
    try:
        text = acc.queryText()
        return text.getText(0, text.characterCount)
    except NotImplementedError:
        return acc.name


def collect(acc, out, depth=0):
    if acc is None or depth > 40:
        return
    role = acc.getRoleName()
    states = acc.getState()
    if role == "frame" or role == "dialog":
        out["windows"].append(acc.name)
    elif role == "label" and states.contains(pyatspi.STATE_SHOWING):
        out["labels"].append(text_of(acc))
    elif role == "table cell":
        out["cells"].append(text_of(acc))
    elif role == "push button" and states.contains(pyatspi.STATE_SHOWING):
        out["buttons"].append(acc.name)
    if states.contains(pyatspi.STATE_FOCUSED) and out["focused"] is None:
        out["focused"] = f"{role}: {acc.name}"
    for child in acc:
        collect(child, out, depth + 1)


def apps(name):
    desktop = pyatspi.Registry.getDesktop(0)
    return [a for a in desktop if a is not None and a.name == name]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("--wait", type=float, default=20)
    ap.add_argument("--title")
    ap.add_argument("--absent", action="store_true")
    args = ap.parse_args()
    deadline = time.monotonic() + args.wait
    while True:
        try:
            found = apps(args.app)
            if args.absent:
                if not found:
                    print(json.dumps({"gone": True}))
                    return 0
            else:
                for app in found:
                    out = {"windows": [], "labels": [], "cells": [], "buttons": [], "focused": None}
                    collect(app, out)
                    titled = args.title is None or args.title in out["windows"]
                    if out["windows"] and out["labels"] and out["buttons"] and titled:
                        print(json.dumps(out))
                        return 0
        except Exception:  # the app may go away while it is read
            pass
        if time.monotonic() > deadline:
            print(json.dumps({"timeout": True, "apps": [a.name for a in pyatspi.Registry.getDesktop(0) if a]}))
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
