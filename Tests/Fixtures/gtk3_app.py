#!/usr/bin/python3
"""GTK3 fixture app for deskgate's AT-SPI tests.

    /usr/bin/python3 Tests/Fixtures/gtk3_app.py [--rows N [--groups G]] [--name NAME] [--title TITLE]
        [--table N [--scroll-row R]] [--add-button] [--twin-email] [--extras]
        [--extra-label TEXT] [--extra-button TEXT]

Window "deskgate fixture" with a form: entries labelled "Name" and "Email" (each GtkLabel is the
entry's mnemonic widget, so the entry is labelled-by the label), a password entry labelled
"Password", check boxes "Subscribe" and "Accept terms", a spin button "Quantity" (0..100), a scale
"Volume" (0..10), a "Submit" button, a status label, a "Temporary" row, a "Remove row" button and
N extra rows of (button "Button i", label "Label i", check box "Check i"), about 4 nodes per row.
--extra-label / --extra-button add a label / a button with any text (e.g. hostile text for the MCP
tests) below the status label; without them the tree is unchanged.

stdout (flushed, one event per line), for tests to observe:
    ready                               window shown, tree built
    clicked <button label>              any button click
    text-changed <field> <length>       entry changed (length only, never content)
    toggled <check label> <0|1>
    value-changed <field> <value>
    removed <what>                      "Remove row" destroyed a widget (or "removed nothing")
    renamed <old> <new>                 SIGUSR1 renamed the "Submit" button to "Delete everything"
                                        (an app changing an element between a snapshot and an action)
    added <n>                           "Add row" (--add-button) added row "Added n": packed at
                                        the end for odd n (GTK3 announces nothing), added with
                                        gtk_container_add and moved first for even n
With --extras: a combo box "Color" (Red, Green, Blue), an entry "Locked" that puts its text back
to "fixed" after any edit, a toggle button "Bold" that takes its new state 200 ms after a click, and
a "Show later" button that adds a button "Appeared" 300 ms after a click:
    combo-changed <text>  toggled Bold <0|1>  clicked Show later  appeared
The status label ("Status: ...") mirrors the last event so it is observable through AT-SPI too.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gtk", "3.0")


def emit(line):
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0, help="extra rows of (button, label, check box)")
    ap.add_argument("--name", default="deskgate-fixture-gtk3", help="AT-SPI application name")
    ap.add_argument("--title", default="deskgate fixture", help="window title")
    ap.add_argument("--table", type=int, default=0,
                    help='a tree view "Items" of N rows (Item i, i): a MANAGES_DESCENDANTS table')
    ap.add_argument("--scroll-row", type=int, default=0, help="scroll the table so row R is in its middle")
    ap.add_argument("--groups", type=int, default=0,
                    help="put the N rows into this many boxes of their own (a deeper, narrower tree)")
    ap.add_argument("--twin-email", action="store_true",
                    help='a second entry also labelled "Email" (an ambiguous label)')
    ap.add_argument("--add-button", action="store_true",
                    help='an "Add row" button (off by default: the other tests count nodes)')
    ap.add_argument("--extras", action="store_true",
                    help='a combo box "Color" (Red, Green, Blue), a toggle button "Bold" that turns on '
                         '200 ms after it is clicked (as LibreOffice\'s toolbar does), and a "Show later" button '
                         'that adds a button "Appeared" 300 ms after it is clicked')
    ap.add_argument("--extra-label", help="a label showing this text (below the status label)")
    ap.add_argument("--extra-button", help="a button labelled with this text (below the status label)")
    args = ap.parse_args()
    # PyGObject's Gtk import runs gtk_init on sys.argv, which would eat GTK's own options
    # (e.g. --name): import only after parsing, with our options removed.
    sys.argv[1:] = []
    from gi.repository import GLib, Gtk  # noqa: E402

    # atk-bridge names the application after the program name.
    GLib.set_prgname(args.name)
    GLib.set_application_name(args.name)
    Gtk.init(sys.argv[:1])

    win = Gtk.Window(title=args.title)
    win.set_default_size(480, 700)
    outer = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
    outer.set_border_width(6)

    status = Gtk.Label(label="Status: idle")
    status.set_xalign(0)

    def set_status(text):
        status.set_text("Status: " + text)

    # --- the form -------------------------------------------------------------------------
    grid = Gtk.Grid(column_spacing=6, row_spacing=4)
    entries = {}

    def labelled(row, text, widget):
        label = Gtk.Label.new_with_mnemonic(text)
        label.set_xalign(1)
        label.set_mnemonic_widget(widget)  # gives labelled-by / label-for relations
        grid.attach(label, 0, row, 1, 1)
        widget.set_hexpand(True)
        grid.attach(widget, 1, row, 1, 1)

    for row, (key, text) in enumerate([("name", "_Name"), ("email", "_Email")]):
        e = Gtk.Entry()
        e.connect("changed", lambda w, k=key: on_text(k, w))
        entries[key] = e
        labelled(row, text, e)
    pw = Gtk.Entry()
    pw.set_visibility(False)
    pw.set_input_purpose(Gtk.InputPurpose.PASSWORD)
    pw.connect("changed", lambda w: on_text("password", w))
    entries["password"] = pw
    labelled(2, "_Password", pw)

    spin = Gtk.SpinButton.new_with_range(0, 100, 1)
    spin.connect("value-changed", lambda w: on_value("quantity", w.get_value()))
    labelled(3, "_Quantity", spin)
    scale = Gtk.Scale.new_with_range(Gtk.Orientation.HORIZONTAL, 0, 10, 1)
    scale.set_value(5)
    scale.connect("value-changed", lambda w: on_value("volume", w.get_value()))
    labelled(4, "_Volume", scale)
    if args.extras:
        combo = Gtk.ComboBoxText()
        for color in ("Red", "Green", "Blue"):
            combo.append_text(color)
        combo.set_active(0)
        combo.connect("changed", lambda w: (emit(f"combo-changed {w.get_active_text()}"),
                                            set_status(f"color {w.get_active_text()}")))
        labelled(6, "C_olor", combo)
        locked = Gtk.Entry()
        locked.set_text("fixed")

        def on_locked(w):
            # An app that answers an edit and keeps its text: what Firefox does with web inputs.
            # Put back at once, inside the edit: put back later (an idle callback), a read that
            # comes first sees the edit, and whether the test saw it depended on the machine's load.
            if w.get_text() != "fixed":
                w.set_text("fixed")
        locked.connect("changed", on_locked)
        labelled(7, "_Locked", locked)
    if args.twin_email:
        twin = Gtk.Entry()
        twin.connect("changed", lambda w: on_text("email2", w))
        labelled(5, "E_mail", twin)
    outer.pack_start(grid, False, False, 0)

    def on_text(key, w):
        n = len(w.get_text())
        emit(f"text-changed {key} {n}")
        set_status(f"{key} has {n} characters")

    def on_value(key, v):
        v = int(v) if float(v).is_integer() else v
        emit(f"value-changed {key} {v}")
        set_status(f"{key} is {v}")

    def on_toggled(w):
        on = 1 if w.get_active() else 0
        emit(f"toggled {w.get_label()} {on}")
        set_status(f"{w.get_label()} {'on' if on else 'off'}")

    for text in ("Subscribe", "Accept terms"):
        cb = Gtk.CheckButton(label=text)
        cb.connect("toggled", on_toggled)
        outer.pack_start(cb, False, False, 0)

    submits = [0]

    def on_submit(b):
        submits[0] += 1
        emit(f"clicked {b.get_label()}")
        set_status(f"submitted {submits[0]}")

    buttons = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    submit = Gtk.Button(label="Submit")
    submit.connect("clicked", on_submit)
    buttons.pack_start(submit, False, False, 0)
    remove = Gtk.Button(label="Remove row")
    buttons.pack_start(remove, False, False, 0)
    outer.pack_start(buttons, False, False, 0)
    outer.pack_start(status, False, False, 0)
    if args.extra_label is not None:
        extra_label = Gtk.Label(label=args.extra_label)
        extra_label.set_xalign(0)
        outer.pack_start(extra_label, False, False, 0)

    # --- removable row and the large-tree rows ---------------------------------------------
    rows_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
    removable = []  # (description, widget), removed last-first after "Temporary"

    def on_click(b):
        emit(f"clicked {b.get_label()}")
        set_status(f"clicked {b.get_label()}")

    if args.extra_button is not None:
        extra_button = Gtk.Button(label=args.extra_button)
        extra_button.connect("clicked", on_click)
        outer.pack_start(extra_button, False, False, 0)

    temp_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    temp_button = Gtk.Button(label="Temporary")
    temp_button.connect("clicked", on_click)
    temp_row.pack_start(temp_button, False, False, 0)
    temp_row.pack_start(Gtk.CheckButton(label="Temporary check"), False, False, 0)
    rows_box.pack_start(temp_row, False, False, 0)

    groups = [Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2) for _ in range(args.groups)]
    for group in groups:
        rows_box.pack_start(group, False, False, 0)
    per_group = -(-args.rows // max(1, args.groups))
    for i in range(args.rows):
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        b = Gtk.Button(label=f"Button {i}")
        b.connect("clicked", on_click)
        row.pack_start(b, False, False, 0)
        row.pack_start(Gtk.Label(label=f"Label {i}"), False, False, 0)
        c = Gtk.CheckButton(label=f"Check {i}")
        c.connect("toggled", on_toggled)
        row.pack_start(c, False, False, 0)
        (groups[i // per_group] if groups else rows_box).pack_start(row, False, False, 0)
        removable.append((f"row {i}", row))
    removable.append(("Temporary", temp_row))

    def on_remove(b):
        emit(f"clicked {b.get_label()}")
        if not removable:
            emit("removed nothing")
            set_status("removed nothing")
            return
        what, w = removable.pop()
        w.destroy()
        emit(f"removed {what}")
        set_status(f"removed {what}")

    remove.connect("clicked", on_remove)

    added = [0]

    def on_add(b):
        emit(f"clicked {b.get_label()}")
        added[0] += 1
        n = added[0]
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        nb = Gtk.Button(label=f"Added {n}")
        nb.connect("clicked", on_click)
        row.pack_start(nb, False, False, 0)
        row.pack_start(Gtk.Label(label=f"Added label {n}"), False, False, 0)
        row.pack_start(Gtk.CheckButton(label=f"Added check {n}"), False, False, 0)
        if n % 2 == 1:
            # GTK3 announces no child added this way (no ChildrenChanged, no AddAccessible).
            rows_box.pack_start(row, False, False, 0)
        else:
            rows_box.add(row)  # gtk_container_add: announced
            rows_box.reorder_child(row, 0)
        row.show_all()
        removable.append((f"added {n}", row))
        emit(f"added {n}")
        set_status(f"added {n}")

    if args.extras:
        bold = Gtk.ToggleButton(label="Bold")
        pending = [False]

        def on_bold(w):
            # Applied later, like LibreOffice's dispatcher: undo the toggle now, set it in 200 ms.
            if pending[0]:
                return
            wanted = w.get_active()
            pending[0] = True
            w.set_active(not wanted)
            pending[0] = False

            def apply():
                pending[0] = True
                w.set_active(wanted)
                pending[0] = False
                emit(f"toggled Bold {1 if wanted else 0}")
                return False
            GLib.timeout_add(200, apply)

        bold.connect("toggled", on_bold)
        buttons.pack_start(bold, False, False, 0)
        later = Gtk.Button(label="Show later")

        def on_later(b):
            emit("clicked Show later")

            def appear():
                shown = Gtk.Button(label="Appeared")
                buttons.add(shown)  # gtk_container_add: announced
                shown.show()
                emit("appeared")
                return False
            GLib.timeout_add(300, appear)

        later.connect("clicked", on_later)
        buttons.pack_start(later, False, False, 0)

    if args.add_button:
        add = Gtk.Button(label="Add row")
        add.connect("clicked", on_add)
        buttons.pack_start(add, False, False, 0)

    scroller = Gtk.ScrolledWindow()
    scroller.set_vexpand(True)
    scroller.add(rows_box)
    outer.pack_start(scroller, True, True, 0)

    if args.table:
        store = Gtk.ListStore(str, int)
        for i in range(args.table):
            store.append([f"Item {i}", i])
        view = Gtk.TreeView(model=store)
        for column, title in enumerate(["Item", "Count"]):
            view.append_column(Gtk.TreeViewColumn(title, Gtk.CellRendererText(), text=column))
        table_scroller = Gtk.ScrolledWindow()
        table_scroller.set_min_content_height(120)
        table_scroller.add(view)
        outer.pack_start(table_scroller, False, False, 0)
        if args.scroll_row:
            view.scroll_to_cell(Gtk.TreePath(args.scroll_row), None, True, 0.5, 0.0)

    win.add(outer)
    win.connect("destroy", Gtk.main_quit)
    win.show_all()

    def ready():
        emit("ready")
        return False

    GLib.idle_add(ready, priority=GLib.PRIORITY_LOW)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, Gtk.main_quit)

    def rename():
        old = submit.get_label()
        submit.set_label("Delete everything")
        emit(f"renamed {old} Delete everything")
        return True

    # The parent may have left SIGUSR1 blocked (a spawning thread's mask is inherited).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, rename)
    Gtk.main()


if __name__ == "__main__":
    main()
