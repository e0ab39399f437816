// ATSPI module: see docs/architecture.md.
