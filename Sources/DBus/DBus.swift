// DBus module: see docs/architecture.md.
