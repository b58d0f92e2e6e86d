"""Education, health and online-information figures: thresholds, storage, alerts and the figures
the wall reads (docs/kpi.md). The ingest worker (ingest/sectors.py) and the HTTP API both use it."""
