#!/usr/bin/python3
"""Qt5 fixture app for deskgate's AT-SPI tests (same core form as gtk3_app.py).

    QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1 /usr/bin/python3 Tests/Fixtures/qt5_app.py [--rows N] [--name NAME]

Qt 5.15 registers with the AT-SPI registry only if it starts before org.a11y.Bus appears
(brief atspi.md §3 pitfall 4): start it through scripts/headless-desktop.sh --app qt5.

Line edits labelled "Name" and "Email" (QLabel buddies), a password line edit labelled "Password",
check boxes "Subscribe" and "Accept terms", a spin box "Quantity", a "Submit" button, a status
label, a "Temporary" row, "Remove row", and N rows of (button "Button i", label "Label i",
check box "Check i").

stdout lines: ready | clicked <label> | text-changed <field> <length> | toggled <label> <0|1> |
value-changed <field> <value> | removed <what>. The status label mirrors the last event.
"""
import argparse
import signal
import sys

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (QApplication, QCheckBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                             QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)


def emit(line):
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--name", default="deskgate-fixture-qt5", help="AT-SPI application name")
    ap.add_argument("--title", default="deskgate fixture")
    ap.add_argument("--table", type=int, default=0, help="a table of N rows (Item i, i)")
    ap.add_argument("--scroll-row", type=int, default=0, help="scroll the table so row R is in its middle")
    args = ap.parse_args()

    app = QApplication([args.name])
    app.setApplicationName(args.name)
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    # Let Python see signals while Qt's loop runs.
    tick = QTimer()
    tick.start(200)
    tick.timeout.connect(lambda: None)

    win = QWidget()
    win.setWindowTitle(args.title)
    outer = QVBoxLayout(win)
    status = QLabel("Status: idle")

    def set_status(text):
        status.setText("Status: " + text)

    form = QFormLayout()

    def labelled(text, widget):
        label = QLabel(text)
        label.setBuddy(widget)  # labelled-by / label-for relations
        form.addRow(label, widget)

    def on_text(key, value):
        emit(f"text-changed {key} {len(value)}")
        set_status(f"{key} has {len(value)} characters")

    for key, text in (("name", "&Name"), ("email", "&Email")):
        e = QLineEdit()
        e.textChanged.connect(lambda v, k=key: on_text(k, v))
        labelled(text, e)
    pw = QLineEdit()
    pw.setEchoMode(QLineEdit.Password)
    pw.textChanged.connect(lambda v: on_text("password", v))
    labelled("&Password", pw)
    spin = QSpinBox()
    spin.setRange(0, 100)

    def on_value(v):
        emit(f"value-changed quantity {v}")
        set_status(f"quantity is {v}")

    spin.valueChanged.connect(on_value)
    labelled("&Quantity", spin)
    outer.addLayout(form)

    def on_toggled(cb, on):
        emit(f"toggled {cb.text()} {1 if on else 0}")
        set_status(f"{cb.text()} {'on' if on else 'off'}")

    def check(text):
        cb = QCheckBox(text)
        cb.toggled.connect(lambda on, cb=cb: on_toggled(cb, on))
        return cb

    outer.addWidget(check("Subscribe"))
    outer.addWidget(check("Accept terms"))

    submits = [0]

    def on_submit():
        submits[0] += 1
        emit("clicked Submit")
        set_status(f"submitted {submits[0]}")

    buttons = QHBoxLayout()
    submit = QPushButton("Submit")
    submit.clicked.connect(on_submit)
    buttons.addWidget(submit)
    remove = QPushButton("Remove row")
    buttons.addWidget(remove)
    outer.addLayout(buttons)
    outer.addWidget(status)

    def button(text):
        b = QPushButton(text)

        def clicked():
            emit(f"clicked {text}")
            set_status(f"clicked {text}")
        b.clicked.connect(clicked)
        return b

    rows = QWidget()
    rows_layout = QVBoxLayout(rows)
    removable = []
    temp_row = QWidget()
    tl = QHBoxLayout(temp_row)
    tl.addWidget(button("Temporary"))
    tl.addWidget(QCheckBox("Temporary check"))
    rows_layout.addWidget(temp_row)
    for i in range(args.rows):
        row = QWidget()
        rl = QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(button(f"Button {i}"))
        rl.addWidget(QLabel(f"Label {i}"))
        rl.addWidget(check(f"Check {i}"))
        rows_layout.addWidget(row)
        removable.append((f"row {i}", row))
    removable.append(("Temporary", temp_row))

    def on_remove():
        emit("clicked Remove row")
        if not removable:
            emit("removed nothing")
            set_status("removed nothing")
            return
        what, w = removable.pop()
        w.setParent(None)
        w.deleteLater()
        emit(f"removed {what}")
        set_status(f"removed {what}")

    remove.clicked.connect(on_remove)

    scroll = QScrollArea()
    scroll.setWidget(rows)
    scroll.setWidgetResizable(True)
    outer.addWidget(scroll)
    if args.table:
        from PyQt5.QtWidgets import QTableWidget, QTableWidgetItem
        table = QTableWidget(args.table, 2)
        table.setHorizontalHeaderLabels(["Item", "Count"])
        for i in range(args.table):
            table.setItem(i, 0, QTableWidgetItem(f"Item {i}"))
            table.setItem(i, 1, QTableWidgetItem(str(i)))
        outer.addWidget(table)
        if args.scroll_row:
            from PyQt5.QtWidgets import QAbstractItemView
            QTimer.singleShot(0, lambda: table.scrollToItem(table.item(args.scroll_row, 0),
                                                            QAbstractItemView.PositionAtCenter))
    win.resize(480, 700)
    win.show()
    QTimer.singleShot(0, lambda: emit("ready"))
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
