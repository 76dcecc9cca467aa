"""The leaf layer: errors, registries, statistics, atomic file I/O, crash points, signal handling,
run identity and result-table columns. Nothing here imports from the rest of the package
(docs/architecture.md)."""
