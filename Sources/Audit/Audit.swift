// Audit module: see docs/architecture.md.
