"""The run layer: what happens to one run, from the pre-run check of its config to its results
(docs/architecture.md)."""
