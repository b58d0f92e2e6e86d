"""Keeping each cluster's stored week equal to its programmes (``sync_schedule``).

A change of programmes enqueues a ``sync_schedule`` for every cluster it touches; a cluster that
comes online reporting another ``schedule_version`` than its week's gets one too, so a cluster that
was away during a change catches up by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from ioc.radio import commands
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.schedules import cluster_week


def sync_clusters(conn: psycopg.Connection, cluster_ids: Iterable[str], *, now: datetime, policy: RadioPolicy) -> int:
    """Enqueue the current week for each cluster (an unanswered older sync is withdrawn first)."""
    count = 0
    for cluster in sorted(set(cluster_ids)):
        unit = conn.execute("SELECT unit_id FROM devices WHERE id = %s AND kind = 'radio'", (cluster,)).fetchone()
        if unit is None:
            continue
        version, items = cluster_week(conn, cluster)
        conn.execute(
            "UPDATE radio_commands SET state = 'cancelled', reason = 'superseded by a newer week' "
            "WHERE device_id = %s AND command = 'sync_schedule' AND state IN ('pending', 'sent')",
            (cluster,),
        )
        commands.enqueue(
            conn, device_id=cluster, unit_id=unit[0], now=now, timeout_s=policy.ack_timeout_s,
            max_attempts=policy.max_attempts,
            command={"command": "sync_schedule", "version": version,
                     "items": [i.model_dump(mode="json") for i in items]},
        )  # fmt: skip
        conn.execute(
            "INSERT INTO radio_cluster_state (device_id, synced_version) VALUES (%s, %s) "
            "ON CONFLICT (device_id) DO UPDATE SET synced_version = EXCLUDED.synced_version",
            (cluster, version),
        )
        count += 1
    return count


def stale_clusters(conn: psycopg.Connection) -> list[str]:
    """Online clusters whose reported week differs from the one last sent, with no sync on its way."""
    rows = conn.execute(
        """SELECT s.device_id FROM radio_cluster_state s
           WHERE s.online AND s.synced_version IS NOT NULL
             AND s.schedule_version IS DISTINCT FROM s.synced_version
             AND NOT EXISTS (SELECT 1 FROM radio_commands c WHERE c.device_id = s.device_id
                             AND c.command = 'sync_schedule' AND c.state IN ('pending', 'sent', 'accepted'))"""
    ).fetchall()
    return [r[0] for r in rows]
