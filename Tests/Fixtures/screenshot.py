#!/usr/bin/python3
"""Save a PNG of the whole X screen ($DISPLAY), for looking at what a headless test saw.

    /usr/bin/python3 Tests/Fixtures/screenshot.py OUT.png
"""
import sys

import gi

gi.require_version("Gdk", "3.0")
from gi.repository import Gdk  # noqa: E402

if len(sys.argv) != 2:
    sys.exit(__doc__)
root = Gdk.get_default_root_window()
pixbuf = Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height())
pixbuf.savev(sys.argv[1], "png", [], [])
print(sys.argv[1])
