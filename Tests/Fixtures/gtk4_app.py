#!/usr/bin/python3
"""GTK4 fixture app for deskgate's AT-SPI tests (same core form as gtk3_app.py).

    /usr/bin/python3 Tests/Fixtures/gtk4_app.py [--rows N] [--name NAME] [--title TITLE]

Entries labelled "Name" and "Email" (mnemonic labels), a GtkPasswordEntry labelled "Password"
(note: GTK 4.8 exposes its plaintext over AT-SPI; deskgate must redact by role), check boxes
"Subscribe" and "Accept terms", a spin button "Quantity", a "Submit" button (description "Sends the form"), a status label,
a "Temporary" row, "Remove row", and N rows of (button "Button i", label "Label i", check "Check i").

stdout lines: ready | clicked <label> | text-changed <field> <length> | toggled <label> <0|1> |
value-changed <field> <value> | removed <what>. The status label mirrors the last event.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gtk", "4.0")


def emit(line):
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--name", default="deskgate-fixture-gtk4", help="AT-SPI application name")
    ap.add_argument("--title", default="deskgate fixture")
    args = ap.parse_args()
    # PyGObject's Gtk import runs gtk_init on sys.argv, which would eat GTK's own options
    # (e.g. --name): import only after parsing, with our options removed.
    sys.argv[1:] = []
    from gi.repository import GLib, GObject, Gtk  # noqa: E402

    GLib.set_prgname(args.name)
    GLib.set_application_name(args.name)
    Gtk.init()
    loop = GLib.MainLoop()

    win = Gtk.Window(title=args.title)
    win.set_default_size(480, 700)
    outer = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
    status = Gtk.Label(label="Status: idle")
    status.set_xalign(0)

    def set_status(text):
        status.set_text("Status: " + text)

    grid = Gtk.Grid(column_spacing=6, row_spacing=4)

    def labelled(row, text, widget):
        label = Gtk.Label.new_with_mnemonic(text)
        label.set_xalign(1)
        label.set_mnemonic_widget(widget)  # GTK4 sets the labelled-by relation from this
        grid.attach(label, 0, row, 1, 1)
        widget.set_hexpand(True)
        grid.attach(widget, 1, row, 1, 1)

    def on_text(key, w):
        n = len(w.get_text())
        emit(f"text-changed {key} {n}")
        set_status(f"{key} has {n} characters")

    for row, (key, text) in enumerate([("name", "_Name"), ("email", "_Email")]):
        e = Gtk.Entry()
        e.connect("changed", lambda w, k=key: on_text(k, w))
        labelled(row, text, e)
    pw = Gtk.PasswordEntry()
    pw.connect("changed", lambda w: on_text("password", w))
    labelled(2, "_Password", pw)
    spin = Gtk.SpinButton.new_with_range(0, 100, 1)

    def on_value(w):
        v = w.get_value()
        v = int(v) if float(v).is_integer() else v
        emit(f"value-changed quantity {v}")
        set_status(f"quantity is {v}")

    spin.connect("value-changed", on_value)
    labelled(3, "_Quantity", spin)
    outer.append(grid)

    def on_toggled(w):
        on = 1 if w.get_active() else 0
        emit(f"toggled {w.get_label()} {on}")
        set_status(f"{w.get_label()} {'on' if on else 'off'}")

    for text in ("Subscribe", "Accept terms"):
        cb = Gtk.CheckButton(label=text)
        cb.connect("toggled", on_toggled)
        outer.append(cb)

    submits = [0]

    def on_submit(b):
        submits[0] += 1
        emit(f"clicked {b.get_label()}")
        set_status(f"submitted {submits[0]}")

    buttons = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    submit = Gtk.Button(label="Submit")
    submit.connect("clicked", on_submit)
    # An accessible description, so that snapshots are checked to carry it.
    submit.update_property([Gtk.AccessibleProperty.DESCRIPTION], [GObject.Value(GObject.TYPE_STRING, "Sends the form")])
    buttons.append(submit)
    remove = Gtk.Button(label="Remove row")
    buttons.append(remove)
    outer.append(buttons)
    outer.append(status)

    def on_click(b):
        emit(f"clicked {b.get_label()}")
        set_status(f"clicked {b.get_label()}")

    rows_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
    removable = []
    temp_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    tb = Gtk.Button(label="Temporary")
    tb.connect("clicked", on_click)
    temp_row.append(tb)
    temp_row.append(Gtk.CheckButton(label="Temporary check"))
    rows_box.append(temp_row)
    for i in range(args.rows):
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        b = Gtk.Button(label=f"Button {i}")
        b.connect("clicked", on_click)
        row.append(b)
        row.append(Gtk.Label(label=f"Label {i}"))
        c = Gtk.CheckButton(label=f"Check {i}")
        c.connect("toggled", on_toggled)
        row.append(c)
        rows_box.append(row)
        removable.append((f"row {i}", row))
    removable.append(("Temporary", temp_row))

    def on_remove(b):
        emit(f"clicked {b.get_label()}")
        if not removable:
            emit("removed nothing")
            set_status("removed nothing")
            return
        what, w = removable.pop()
        rows_box.remove(w)
        emit(f"removed {what}")
        set_status(f"removed {what}")

    remove.connect("clicked", on_remove)

    scroller = Gtk.ScrolledWindow()
    scroller.set_vexpand(True)
    scroller.set_child(rows_box)
    outer.append(scroller)
    win.set_child(outer)
    win.connect("close-request", lambda w: (loop.quit(), False)[1])
    win.present()

    def ready():
        emit("ready")
        return False

    GLib.idle_add(ready, priority=GLib.PRIORITY_LOW)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
