// DeskgateClient module: see docs/architecture.md.
