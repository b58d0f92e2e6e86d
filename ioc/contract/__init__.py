"""The MQTT contract (topic tree and payload schemas): shared by the ingest workers that enforce it,
the feeds and detectors that speak it, and the docs generated from it (docs/mqtt.md)."""
