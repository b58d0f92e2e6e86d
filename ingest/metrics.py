"""Prometheus metrics of the ingest worker (``ioc ingest --metrics-port 9101`` serves them).

Labels stay bounded: ``kind`` is a device kind from ``devices`` (or ``unknown`` when the device or
topic is not known, so a hostile publisher cannot create label values), ``reason`` is one of the
reason codes of :mod:`ingest.validate`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter(
    "ioc_ingest_messages_received_total", "MQTT messages handed to the worker by the broker", ["channel"]
)
MESSAGES_STORED = Counter(
    "ioc_ingest_messages_stored_total", "Messages newly stored (not counting duplicates)", ["kind", "table"]
)
MESSAGES_DUPLICATE = Counter(
    "ioc_ingest_messages_duplicate_total",
    "Valid messages already stored (a redelivery after a crash or reconnect)",
    ["kind", "table"],
)
MESSAGES_DEAD = Counter(
    "ioc_ingest_messages_dead_lettered_total", "Messages refused and written to dead_letters", ["kind", "reason"]
)
MESSAGES_IGNORED = Counter(
    "ioc_ingest_messages_ignored_total", "Messages on downstream channels (cmd, presence), acknowledged only"
)
BATCH_SIZE = Histogram(
    "ioc_ingest_batch_messages",
    "Messages per committed batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
COMMIT_SECONDS = Histogram(
    "ioc_ingest_commit_seconds",
    "Time to write and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG_SECONDS = Histogram(
    "ioc_ingest_lag_seconds",
    "From the worker receiving a message to its batch being committed",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEVICE_LAG_SECONDS = Histogram(
    "ioc_ingest_device_lag_seconds",
    "From a stored message's device time (ts) to its commit: device clock skew plus transport delay",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600),
)
BUFFERED = Gauge("ioc_ingest_buffered_messages", "Messages received and not yet committed")
DB_UP = Gauge("ioc_ingest_database_up", "1 while the worker's database connection works")
MQTT_UP = Gauge("ioc_ingest_broker_connected", "1 while the worker is connected to the broker")
DB_RETRIES = Counter("ioc_ingest_database_retries_total", "Batches retried because the database was unavailable")
PRESENCE_CHANGES = Counter("ioc_ingest_presence_changes_total", "Device presence changes", ["state", "reason"])
ALERT_FAILURES = Counter(
    "ioc_ingest_alert_failures_total", "Batches whose alerts could not be raised (the messages were stored)"
)
