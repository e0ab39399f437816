#!/usr/bin/python3
"""A stand-in desktop notification server (org.freedesktop.Notifications) on a test session bus.

    notifications.py BUS_ADDRESS CONTROL_FILE

Prints, one flushed line each: "ready"; "notify ID JSON" for each Notify call (JSON holds
app_name, replaces_id, summary, body, actions, hints' keys, expire_timeout); "close ID" for each
CloseNotification. When CONTROL_FILE's content becomes "click ACTION", it emits
ActionInvoked(last id, ACTION) as a person pressing that button would.
"""
import json
import sys

from gi.repository import Gio, GLib

address, control = sys.argv[1:3]
bus = Gio.DBusConnection.new_for_address_sync(
    address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
XML = """<node><interface name="org.freedesktop.Notifications">
  <method name="Notify"><arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
    <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
    <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="out"/></method>
  <method name="CloseNotification"><arg type="u" direction="in"/></method>
  <method name="GetCapabilities"><arg type="as" direction="out"/></method>
  <method name="GetServerInformation"><arg type="s" direction="out"/><arg type="s" direction="out"/>
    <arg type="s" direction="out"/><arg type="s" direction="out"/></method>
  <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal></interface></node>"""
node = Gio.DBusNodeInfo.new_for_xml(XML)
state = {"next": 1, "last": 0, "seen": ""}
PATH, IFACE = "/org/freedesktop/Notifications", "org.freedesktop.Notifications"


def on_call(conn, sender, path, iface, method, params, inv):
    if method == "Notify":
        app, replaces, icon, summary, body, actions, hints, expire = params.unpack()
        nid = replaces or state["next"]
        if not replaces:
            state["next"] += 1
        state["last"] = nid
        print("notify", nid, json.dumps({"app_name": app, "replaces_id": replaces, "summary": summary, "body": body,
                                         "actions": actions, "hints": sorted(hints.keys()), "expire_timeout": expire}),
              flush=True)
        inv.return_value(GLib.Variant("(u)", (nid,)))
    elif method == "CloseNotification":
        nid = params.unpack()[0]
        print("close", nid, flush=True)
        conn.emit_signal(None, PATH, IFACE, "NotificationClosed", GLib.Variant("(uu)", (nid, 3)))
        inv.return_value(None)
    elif method == "GetCapabilities":
        inv.return_value(GLib.Variant("(as)", (["actions", "body", "persistence"],)))
    else:
        inv.return_value(GLib.Variant("(ssss)", ("stand-in", "deskgate tests", "1", "1.2")))


bus.register_object(PATH, node.interfaces[0], on_call, None, None)
bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
              GLib.Variant("(su)", (IFACE, 4)), GLib.VariantType("(u)"), 0, -1, None)


def poll():
    try:
        with open(control) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    if text.startswith("click ") and text != state["seen"]:
        state["seen"] = text
        bus.emit_signal(None, PATH, IFACE, "ActionInvoked", GLib.Variant("(us)", (state["last"], text[6:])))
        bus.flush_sync(None)
        print("clicked", state["last"], text[6:], flush=True)
    return True


GLib.timeout_add(20, poll)
print("ready", flush=True)
GLib.MainLoop().run()
