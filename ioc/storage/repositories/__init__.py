"""Queries over the schema, one module per subject, the same on every time-series backend."""
