#!/usr/bin/python3
"""A stand-in screensaver on a test session bus, for the daemon's lock-screen pause.

    screensaver.py BUS_ADDRESS --own NAME CONTROL_FILE
    screensaver.py BUS_ADDRESS --impostor INTERFACE CONTROL_FILE

--own: owns NAME (org.freedesktop.ScreenSaver or org.gnome.ScreenSaver), serves GetActive at the
name's path and emits ActiveChanged(b) from the owner, as a real screensaver does.
--impostor: emits the same ActiveChanged(b) with INTERFACE from a connection that owns nothing.
Both watch CONTROL_FILE: whenever its content becomes "lock" or "unlock", they set the state and
emit ActiveChanged once, then print "emitted lock" or "emitted unlock". "ready" once serving.
"""
import os
import sys

from gi.repository import Gio, GLib

address, mode, what, control = sys.argv[1:5]
interface = what
path = "/" + what.replace(".", "/")
bus = Gio.DBusConnection.new_for_address_sync(
    address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
state = {"active": False, "seen": ""}

if mode == "--own":
    XML = f"""<node><interface name="{interface}">
      <method name="GetActive"><arg type="b" direction="out"/></method>
      <signal name="ActiveChanged"><arg type="b"/></signal></interface></node>"""
    node = Gio.DBusNodeInfo.new_for_xml(XML)

    def on_call(conn, sender, obj, iface, method, params, inv):
        inv.return_value(GLib.Variant("(b)", (state["active"],)))

    bus.register_object(path, node.interfaces[0], on_call, None, None)
    bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                  GLib.Variant("(su)", (what, 4)), GLib.VariantType("(u)"), 0, -1, None)


def poll():
    try:
        with open(control) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    if text in ("lock", "unlock") and text != state["seen"]:
        state["seen"] = text
        state["active"] = text == "lock"
        bus.emit_signal(None, path, interface, "ActiveChanged", GLib.Variant("(b)", (state["active"],)))
        bus.flush_sync(None)
        print("emitted", text, flush=True)
    return True


GLib.timeout_add(20, poll)
print("ready", flush=True)
GLib.MainLoop().run()
