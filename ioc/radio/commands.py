"""Commands to loudspeaker clusters: a correlation id, an MQTT 5 response topic, a timeout and a
bounded number of sends.

A command is a row first (``radio_commands``, state ``pending``), written in the transaction that
decided it (a broadcast started, a programme changed), so nothing decided is lost if the radio
service restarts. The service sends what is due (:func:`due`), each time with the *same*
correlation id, and waits ``timeout_s`` for the ack; after ``max_attempts`` sends without an answer
the command has timed out. A device that receives a command twice answers again and does it once.

=============  ===================================================================
state          meaning
=============  ===================================================================
pending        decided, not sent yet
sent           sent ``attempts`` times; the next send (or the time-out) is at ``next_at``
accepted       the device said it will do it
rejected       the device said no; ``reason`` is the device's own reason
timeout        no answer after ``max_attempts`` sends of ``timeout_s`` each
cancelled      withdrawn before an answer (the broadcast was stopped)
=============  ===================================================================
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.contract.radio import COMMAND_ADAPTER


@dataclass(frozen=True)
class Outgoing:
    correlation_id: str
    device_id: str
    unit_id: str
    command: str
    payload: bytes
    attempt: int


@dataclass(frozen=True)
class TimedOut:
    correlation_id: str
    device_id: str
    unit_id: str
    command: str
    broadcast_id: int | None
    attempts: int
    reason: str


def new_correlation_id() -> str:
    return f"c-{secrets.token_hex(8)}"


def enqueue(
    conn: psycopg.Connection,
    *,
    device_id: str,
    unit_id: str,
    command: dict[str, Any],
    now: datetime,
    timeout_s: float,
    max_attempts: int,
    broadcast_id: int | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Record a command to send; ``command`` is the payload without the envelope (checked here).

    ``expires_at`` is when the device must no longer obey it (also its MQTT 5 Message Expiry); by
    default the end of its last send's wait, ``now + timeout_s x max_attempts``. A caller that knows
    better (a CAP alert's ``expires``) passes it.
    """
    correlation_id = new_correlation_id()
    expires_at = expires_at or now + timedelta(seconds=timeout_s * max_attempts)
    payload = {"v": 1, "id": correlation_id, "ts": now.isoformat(), "correlation_id": correlation_id,
               "target": device_id, "expires_at": expires_at.isoformat(), **command}  # fmt: skip
    checked = COMMAND_ADAPTER.validate_python(payload, strict=False)
    conn.execute(
        """INSERT INTO radio_commands (correlation_id, device_id, unit_id, command, payload, broadcast_id,
                                       max_attempts, timeout_s, next_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            correlation_id,
            device_id,
            unit_id,
            checked.command,
            Jsonb(checked.model_dump(mode="json")),
            broadcast_id,
            max_attempts,
            timeout_s,
            now,
        ),  # fmt: skip
    )
    return correlation_id


def due(conn: psycopg.Connection, now: datetime, limit: int = 500) -> tuple[list[Outgoing], list[TimedOut]]:
    """Take the commands whose send or time-out is due: send the ones with attempts left, time out
    the others. The caller publishes ``Outgoing`` and commits; rows are locked so two services never
    send the same command at the same moment."""
    rows = conn.execute(
        """SELECT correlation_id, device_id, unit_id, command, payload, broadcast_id, attempts, max_attempts,
                  timeout_s, state
           FROM radio_commands WHERE state IN ('pending', 'sent') AND next_at <= %s
           ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED""",
        (now, limit),
    ).fetchall()
    sends: list[Outgoing] = []
    expired: list[TimedOut] = []
    for cid, device, unit, command, payload, broadcast_id, attempts, max_attempts, timeout_s, _state in rows:
        expires = payload.get("expires_at")
        if attempts < max_attempts and expires and datetime.fromisoformat(expires) <= now:
            reason = f"expired at {expires} after {attempts} sends" if attempts else f"expired at {expires}, never sent"
            conn.execute(
                "UPDATE radio_commands SET state = 'timeout', reason = %s WHERE correlation_id = %s", (reason, cid)
            )
            expired.append(TimedOut(cid, device, unit, command, broadcast_id, attempts, reason))
            continue
        if attempts >= max_attempts:
            reason = f"no answer after {attempts} sends, {timeout_s:g} s each"
            conn.execute(
                "UPDATE radio_commands SET state = 'timeout', reason = %s WHERE correlation_id = %s", (reason, cid)
            )
            expired.append(TimedOut(cid, device, unit, command, broadcast_id, attempts, reason))
            continue
        conn.execute(
            "UPDATE radio_commands SET state = 'sent', attempts = attempts + 1, sent_at = %s, next_at = %s "
            "WHERE correlation_id = %s",
            (now, now + timedelta(seconds=timeout_s), cid),
        )
        sends.append(Outgoing(cid, device, unit, command, json.dumps({**payload, "attempt": attempts + 1}).encode(),
                              attempts + 1))  # fmt: skip
    return sends, expired


class ForeignAck(ValueError):
    """An ack whose sender is not the device the command was sent to: refused, it changes nothing."""


def apply_ack(
    conn: psycopg.Connection, correlation_id: str, accepted: bool, reason: str | None, at: datetime,
    sender: str | None = None,
) -> tuple[str, str, int | None] | None:  # fmt: skip
    """Record the device's answer; returns (device, command, broadcast id) or None for an unknown id.

    ``sender`` is the device whose topic the ack came on (its broker identity): an ack for a command
    sent to another device raises :class:`ForeignAck`. A late answer (after the time-out) still
    counts: the device did receive the command.
    """
    if sender is not None:
        target = conn.execute(
            "SELECT device_id FROM radio_commands WHERE correlation_id = %s", (correlation_id,)
        ).fetchone()
        if target is not None and target[0] != sender:
            raise ForeignAck(f"ack from {sender!r} for command {correlation_id} sent to {target[0]!r}")
    row = conn.execute(
        """UPDATE radio_commands SET state = %s, acked_at = coalesce(acked_at, %s), reason = %s
           WHERE correlation_id = %s AND state IN ('pending', 'sent', 'timeout')
             AND (%s::text IS NULL OR device_id = %s)
           RETURNING device_id, command, broadcast_id""",
        ("accepted" if accepted else "rejected", at, reason, correlation_id, sender, sender),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def cancel_for_broadcast(conn: psycopg.Connection, broadcast_id: int, command: str = "play") -> int:
    """Withdraw the unanswered ``command`` of a broadcast (it was stopped before the device answered)."""
    return conn.execute(
        "UPDATE radio_commands SET state = 'cancelled', reason = 'broadcast stopped' "
        "WHERE broadcast_id = %s AND command = %s AND state IN ('pending', 'sent')",
        (broadcast_id, command),
    ).rowcount
