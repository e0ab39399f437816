// Broker module: see docs/architecture.md.
