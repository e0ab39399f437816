#!/usr/bin/python3
"""Time an app's own bulk reply: org.a11y.atspi.Cache.GetItems, from a bare GDBus client.

    /usr/bin/python3 Tests/Fixtures/cache_items.py APPNAME [--count N] [--bus]

The floor under a deskgate snapshot of an app that has a cache (atk-bridge apps: GTK3, Firefox,
Chromium, LibreOffice): the app builds and sends its whole tree in one reply. Calls it over the
app's peer-to-peer address (Application.GetApplicationBusAddress, as deskgated does) unless --bus,
N times after one untimed call, and prints one line of JSON:
    {"app", "items", "p50_ms", "min_ms", "max_ms", "calls", "path": "p2p"|"bus"}
Exit status 1 when the app is not registered.
"""
import argparse
import json
import os
import statistics
import sys
import time

from gi.repository import Gio, GLib

FLAGS = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION


def call(conn, dest, path, iface, method, args=None, reply=None, timeout=60000):
    return conn.call_sync(dest, path, iface, method, args, GLib.VariantType(reply) if reply else None,
                          Gio.DBusCallFlags.NONE, timeout, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--bus", action="store_true", help="through the bus daemon instead of peer to peer")
    args = ap.parse_args()
    bus = Gio.DBusConnection.new_for_address_sync(os.environ["AT_SPI_BUS_ADDRESS"], FLAGS, None, None)
    children = call(bus, "org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root",
                    "org.a11y.atspi.Accessible", "GetChildren", reply="(a(so))").unpack()[0]
    name = None
    for unique, path in children:
        try:
            value = call(bus, unique, path, "org.freedesktop.DBus.Properties", "Get",
                         GLib.Variant("(ss)", ("org.a11y.atspi.Accessible", "Name")), timeout=2000).unpack()[0]
        except GLib.Error:
            continue
        if value == args.app:
            name = unique
            break
    if name is None:
        print(f"cache_items: app {args.app!r} not registered", file=sys.stderr)
        return 1
    conn, dest, how = bus, name, "bus"
    if not args.bus:
        address = call(bus, name, "/org/a11y/atspi/accessible/root", "org.a11y.atspi.Application",
                       "GetApplicationBusAddress", reply="(s)").unpack()[0]
        if address:
            conn = Gio.DBusConnection.new_for_address_sync(address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
            dest, how = None, "p2p"
    samples, items = [], 0
    for i in range(args.count + 1):
        t0 = time.perf_counter()
        result = call(conn, dest, "/org/a11y/atspi/cache", "org.a11y.atspi.Cache", "GetItems")
        elapsed = (time.perf_counter() - t0) * 1000
        items = result.get_child_value(0).n_children()
        if i > 0:
            samples.append(elapsed)
    print(json.dumps({"app": args.app, "items": items, "p50_ms": round(statistics.median(samples), 2),
                      "min_ms": round(min(samples), 2), "max_ms": round(max(samples), 2), "calls": len(samples), "path": how}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
