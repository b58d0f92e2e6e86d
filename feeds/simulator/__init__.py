"""A seeded, realistic day of the district's feeds, published on MQTT.

Each feed (device heartbeats, radio telemetry, camera events, citizen reports, dossiers, ...) is a
generator of timestamped messages; the runner merges them in time order and publishes them at the
pace of the simulated clock. The same seed gives the same day.
"""
