"""Broadcasts: who they reach, when they start, and what each cluster reported (the proof).

A broadcast targets communes, clusters or a polygon (the clusters whose position lies inside); it is
started at once, or waits for a second person when the district's ``radio.second_confirmation``
policy says so. Starting writes one ``radio_playbacks`` row and one ``play`` command per cluster
in the same transaction. The clusters' acks and playback events move the rows; when every row is
settled the broadcast is finished and each cluster that did not play it fully raises an alert.

Proof rules (docs/radio.md): ``full`` when the cluster reported ``playback.finished`` for the
whole length; ``partial`` when it started and was interrupted (or stopped reporting) part-way, with
the position reached; ``none`` otherwise, with the reason: offline, no answer, rejected with the
device's own reason, stopped before it played.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from shapely.geometry import Point, shape

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.hub.events import LiveEvent, notify
from ioc.radio import commands
from ioc.radio.schedules import audio_ref

FULL_SHARE = 0.98  # a finished report this close to the length counts as full (device rounding)


class TargetError(ValueError):
    """The targets name something that does not exist, or reach no cluster; ``str()`` says which."""


@dataclass(frozen=True)
class RadioPolicy:
    """Timeouts, retries and the confirmation rule (built by :mod:`ioc.radio.policy` from the settings
    and the district file; tests pass short timeouts)."""

    ack_timeout_s: float = 10.0
    max_attempts: int = 3
    playback_grace_s: float = 60.0
    second_confirmation: str = "never"  # never | urgent | always


def resolve_targets(
    conn: psycopg.Connection, unit_ids: list[str], cluster_ids: list[str], polygon: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """(cluster, unit) of every enabled cluster the targets reach, sorted; a unit reaches its sub-units."""
    known_units = {r[0] for r in conn.execute("SELECT id FROM units WHERE id = ANY(%s)", (unit_ids,))}
    missing = [u for u in unit_ids if u not in known_units]
    if missing:
        raise TargetError(f"unknown unit(s): {', '.join(missing)}")
    clusters = {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute("SELECT id, unit_id, lat, lon FROM devices WHERE kind = 'radio' AND enabled")
    }
    missing = [c for c in cluster_ids if c not in clusters]
    if missing:
        raise TargetError(f"unknown radio cluster(s): {', '.join(missing)}")
    chosen = set(cluster_ids)
    if unit_ids:
        below = {
            r[0]
            for r in conn.execute(
                """WITH RECURSIVE t(id) AS (SELECT unnest(%s::text[])
                       UNION SELECT u.id FROM units u JOIN t ON u.parent_id = t.id)
                   SELECT id FROM t""",
                (unit_ids,),
            )
        }
        chosen |= {c for c, (unit, _, _) in clusters.items() if unit in below}
    if polygon is not None:
        try:
            area = shape(polygon)
            if area.geom_type not in ("Polygon", "MultiPolygon") or not area.is_valid:
                raise ValueError("expected a valid GeoJSON Polygon or MultiPolygon (lon, lat)")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise TargetError(f"polygon: {exc}") from None
        chosen |= {c for c, (_, lat, lon) in clusters.items() if lat is not None and area.covers(Point(lon, lat))}
    if not chosen:
        raise TargetError("the targets reach no loudspeaker cluster")
    return sorted((c, clusters[c][0]) for c in chosen)


def _targets(conn: psycopg.Connection, targets: dict[str, Any]) -> list[tuple[str, str]]:
    units, clusters = targets.get("unit_ids") or [], targets.get("cluster_ids") or []
    return resolve_targets(conn, units, clusters, targets.get("polygon"))


def create(
    conn: psycopg.Connection,
    *,
    title: str,
    text: str | None,
    audio_id: int | None,
    targets: dict[str, Any],
    repeat: int,
    urgent: bool,
    requested_by: str,
    policy: RadioPolicy,
    now: datetime,
    source: str = "operator",
    cap_identifier: str | None = None,
    proposed: bool = False,
    expires_at: datetime | None = None,
) -> int:
    """Record a broadcast; start it unless it needs a second confirmation (or is only a proposal).

    ``expires_at`` bounds its play commands (a CAP alert's ``expires``); default: the commands' own
    retry window (:func:`ioc.radio.commands.enqueue`)."""
    clusters = _targets(conn, targets)
    needs_second = policy.second_confirmation == "always" or (policy.second_confirmation == "urgent" and urgent)
    status = "proposed" if proposed else ("awaiting_confirmation" if needs_second else "pending")
    if audio_id is None and status == "pending":
        raise TargetError("a broadcast needs a recording (audio_id) or a text to read")
    targets = {**targets, "clusters": [c for c, _ in clusters]}
    row = conn.execute(
        """INSERT INTO radio_broadcasts (kind, title, text, audio_id, targets, repeat, status, requested_by, source,
                                         cap_identifier, created_at, updated_at, expires_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            "urgent" if urgent else "normal",
            title,
            text,
            audio_id,
            Jsonb(targets),
            repeat,
            status,
            requested_by,
            source,
            cap_identifier,
            now,
            now,
            expires_at,
        ),  # fmt: skip
    ).fetchone()
    assert row is not None
    broadcast_id = int(row[0])
    from ioc.incidents.store import attach_broadcast

    attach_broadcast(conn, broadcast_id, unit_ids=[u for _, u in clusters], title=title, urgent=urgent, now=now)
    if status == "pending":
        start(conn, broadcast_id, policy=policy, now=now, expires_at=expires_at)
    else:
        _live(conn, "broadcast.created", broadcast_id, now, status=status, title=title)
    return broadcast_id


def start(conn: psycopg.Connection, broadcast_id: int, *, policy: RadioPolicy, now: datetime,
          expires_at: datetime | None = None) -> None:  # fmt: skip
    """Write a playback row and a ``play`` command for every targeted cluster (signed and expiring when
    sent, until ``expires_at`` when given); mark it playing."""
    row = conn.execute(
        """SELECT b.title, b.repeat, b.kind, b.targets, a.id, a.sha256, a.duration_s, b.expires_at
           FROM radio_broadcasts b LEFT JOIN radio_audio a ON a.id = b.audio_id WHERE b.id = %s FOR UPDATE OF b""",
        (broadcast_id,),
    ).fetchone()
    if row is None:
        raise LookupError(broadcast_id)
    title, repeat, kind, targets, audio_id, sha256, duration_s, expires_at = row
    if audio_id is None:
        raise TargetError("a broadcast needs a recording (audio_id) before it can start")
    clusters = _targets(conn, targets)
    online = dict(conn.execute("SELECT device_id, online FROM radio_cluster_state").fetchall())
    audio = audio_ref(audio_id, sha256, float(duration_s))
    for cluster, unit in clusters:
        conn.execute(
            """INSERT INTO radio_playbacks (broadcast_id, device_id, unit_id, state, duration_s, offline_at_start,
                                            updated_at)
               VALUES (%s, %s, %s, 'pending', %s, %s, %s) ON CONFLICT DO NOTHING""",
            (broadcast_id, cluster, unit, float(duration_s) * repeat, not online.get(cluster, False), now),
        )
        commands.enqueue(
            conn,
            device_id=cluster,
            unit_id=unit,
            broadcast_id=broadcast_id,
            now=now,
            timeout_s=policy.ack_timeout_s,
            max_attempts=policy.max_attempts,
            expires_at=expires_at,
            command={
                "command": "play",
                "item": f"b-{broadcast_id}",
                "broadcast_id": broadcast_id,
                "audio": audio.model_dump(mode="json"),
                "repeat": repeat,
                "priority": "urgent" if kind == "urgent" else "normal",
                **({"expires_at": expires_at.isoformat()} if expires_at else {}),
            },  # fmt: skip
        )
    conn.execute(
        "UPDATE radio_broadcasts SET status = 'playing', started_at = %s, updated_at = %s WHERE id = %s",
        (now, now, broadcast_id),
    )
    _live(conn, "broadcast.started", broadcast_id, now, title=title, clusters=len(clusters))


def confirm(
    conn: psycopg.Connection,
    broadcast_id: int,
    *,
    by: str,
    policy: RadioPolicy,
    now: datetime,
    audio_id: int | None = None,
) -> str:
    """The second person's confirmation (or an operator starting a proposal); returns the new status.

    Raises PermissionError when the requester confirms their own broadcast, ValueError when it is not
    waiting for a confirmation."""
    row = conn.execute(
        "SELECT status, requested_by, audio_id FROM radio_broadcasts WHERE id = %s FOR UPDATE", (broadcast_id,)
    ).fetchone()
    if row is None:
        raise LookupError(broadcast_id)
    status, requested_by, current_audio = row
    if status not in ("awaiting_confirmation", "proposed"):
        raise ValueError(f"broadcast is {status}, not waiting for a confirmation")
    if status == "awaiting_confirmation" and requested_by == by:
        raise PermissionError("the second confirmation must come from another person than the requester")
    if audio_id is not None or current_audio is None:
        conn.execute("UPDATE radio_broadcasts SET audio_id = %s WHERE id = %s", (audio_id, broadcast_id))
    conn.execute(
        "UPDATE radio_broadcasts SET confirmed_by = %s, confirmed_at = %s, status = 'pending' WHERE id = %s",
        (by, now, broadcast_id),
    )
    start(conn, broadcast_id, policy=policy, now=now)
    return "playing"


def stop(conn: psycopg.Connection, broadcast_id: int, *, by: str, policy: RadioPolicy, now: datetime,
         reason: str = "stopped by an operator") -> str:  # fmt: skip
    """Stop a broadcast: unanswered play commands are withdrawn, clusters playing it are told to stop
    (their ``interrupted`` reports give the position reached)."""
    row = conn.execute("SELECT status FROM radio_broadcasts WHERE id = %s FOR UPDATE", (broadcast_id,)).fetchone()
    if row is None:
        raise LookupError(broadcast_id)
    if row[0] in ("finished", "stopped", "cancelled"):
        return str(row[0])
    if row[0] in ("awaiting_confirmation", "proposed", "pending"):
        conn.execute(
            "UPDATE radio_broadcasts SET status = 'cancelled', stopped_by = %s, reason = %s, ended_at = %s, "
            "updated_at = %s WHERE id = %s",
            (by, reason, now, now, broadcast_id),
        )
        _live(conn, "broadcast.finished", broadcast_id, now, status="cancelled")
        return "cancelled"
    commands.cancel_for_broadcast(conn, broadcast_id)
    conn.execute(
        "UPDATE radio_playbacks SET state = 'stopped', reason = 'stopped before it played', updated_at = %s "
        "WHERE broadcast_id = %s AND state IN ('pending', 'sent')",
        (now, broadcast_id),
    )
    for device, unit in conn.execute(
        "SELECT device_id, unit_id FROM radio_playbacks WHERE broadcast_id = %s AND state IN ('accepted', 'playing')",
        (broadcast_id,),
    ).fetchall():
        commands.enqueue(conn, device_id=device, unit_id=unit, broadcast_id=broadcast_id, now=now,
                         timeout_s=policy.ack_timeout_s, max_attempts=policy.max_attempts,
                         command={"command": "stop", "item": f"b-{broadcast_id}"})  # fmt: skip
    conn.execute(
        "UPDATE radio_broadcasts SET status = 'stopped', stopped_by = %s, reason = %s, updated_at = %s WHERE id = %s",
        (by, reason, now, broadcast_id),
    )
    _live(conn, "broadcast.progress", broadcast_id, now, status="stopped")
    return "stopped"


# -- what the clusters report -----------------------------------------------------------------------


def on_ack(conn: psycopg.Connection, device_id: str, broadcast_id: int, accepted: bool, reason: str | None,
           at: datetime, now: datetime) -> None:  # fmt: skip
    """A cluster answered a broadcast's play command."""
    if accepted:
        conn.execute(
            "UPDATE radio_playbacks SET state = 'accepted', acked_at = coalesce(acked_at, %s), updated_at = %s "
            "WHERE broadcast_id = %s AND device_id = %s AND state IN ('pending', 'sent', 'timeout')",
            (at, now, broadcast_id, device_id),
        )
    else:
        conn.execute(
            "UPDATE radio_playbacks SET state = 'rejected', acked_at = %s, reason = %s, updated_at = %s "
            "WHERE broadcast_id = %s AND device_id = %s AND state IN ('pending', 'sent', 'timeout', 'accepted')",
            (at, f"rejected: {reason or 'no reason given'}", now, broadcast_id, device_id),
        )
    _progress(conn, broadcast_id, device_id, now)


def on_timeout(conn: psycopg.Connection, device_id: str, broadcast_id: int, reason: str, now: datetime) -> None:
    conn.execute(
        "UPDATE radio_playbacks SET state = 'timeout', reason = %s, updated_at = %s "
        "WHERE broadcast_id = %s AND device_id = %s AND state IN ('pending', 'sent')",
        (reason, now, broadcast_id, device_id),
    )
    _progress(conn, broadcast_id, device_id, now)


def on_playback(conn: psycopg.Connection, device_id: str, broadcast_id: int, event: str, data: Any,
                at: datetime, now: datetime) -> None:  # fmt: skip
    """``playback.started`` / ``finished`` / ``interrupted`` of a broadcast on one cluster."""
    if event == "playback.started":
        conn.execute(
            """UPDATE radio_playbacks SET state = 'playing', started_at = least(coalesce(started_at, %(at)s), %(at)s),
                   acked_at = coalesce(acked_at, %(at)s), duration_s = coalesce(%(duration)s, duration_s),
                   updated_at = %(now)s
               WHERE broadcast_id = %(b)s AND device_id = %(d)s AND state NOT IN ('finished', 'interrupted')""",
            {"at": at, "duration": data.duration_s, "now": now, "b": broadcast_id, "d": device_id},
        )
    else:
        state = "finished" if event == "playback.finished" else "interrupted"
        conn.execute(
            """UPDATE radio_playbacks SET state = %(state)s, finished_at = %(at)s, position_s = %(pos)s,
                   repeats_done = %(repeats)s, reason = %(reason)s, started_at = coalesce(started_at, %(at)s),
                   duration_s = coalesce(%(duration)s, duration_s), updated_at = %(now)s
               WHERE broadcast_id = %(b)s AND device_id = %(d)s""",
            {
                "state": state,
                "at": at,
                "pos": data.position_s,
                "repeats": data.repeats_done,
                "reason": data.reason if state == "interrupted" else None,
                "duration": data.duration_s,
                "now": now,
                "b": broadcast_id,
                "d": device_id,
            },  # fmt: skip
        )
    _progress(conn, broadcast_id, device_id, now)


def _progress(conn: psycopg.Connection, broadcast_id: int, device_id: str, now: datetime) -> None:
    row = conn.execute(
        "SELECT unit_id, state, position_s FROM radio_playbacks WHERE broadcast_id = %s AND device_id = %s",
        (broadcast_id, device_id),
    ).fetchone()
    if row:
        _live(conn, "broadcast.progress", broadcast_id, now, unit_id=row[0], cluster_id=device_id, state=row[1],
              position_s=row[2])  # fmt: skip


# -- the proof ------------------------------------------------------------------------------------------


def outcome_of(state: str, position_s: float | None, duration_s: float | None, reason: str | None,
               offline_at_start: bool, online_now: bool | None) -> tuple[str, str | None]:  # fmt: skip
    """(full | partial | none, reason) of one cluster from what it reported."""
    pos = position_s or 0.0
    if state == "finished":
        if duration_s and pos < duration_s * FULL_SHARE:
            return "partial", f"finished early at {pos:.1f} of {duration_s:.1f} s"
        return "full", None
    if state == "interrupted":
        return ("partial" if pos > 0 else "none"), f"interrupted ({reason or 'no reason given'}) at {pos:.1f} s"
    if state == "playing":
        return "partial", "playing, end not reported yet"
    if state == "timeout":
        if offline_at_start or online_now is False:
            return "none", "offline"
        return "none", reason or "no answer"
    if state == "accepted":
        return "none", "accepted, playback not reported yet"
    if state in ("pending", "sent"):
        return "none", "offline, waiting for the cluster" if offline_at_start else "waiting for the cluster's answer"
    return "none", reason


def proof(conn: psycopg.Connection, broadcast_id: int) -> dict[str, Any] | None:
    """The proof-of-broadcast report: per cluster its outcome, reason, position and times."""
    head = conn.execute(
        "SELECT id, title, status, kind, repeat, created_at, started_at, ended_at FROM radio_broadcasts WHERE id = %s",
        (broadcast_id,),
    ).fetchone()
    if head is None:
        return None
    rows = conn.execute(
        """SELECT p.device_id, p.unit_id, d.name, p.state, p.position_s, p.duration_s, p.reason, p.offline_at_start,
                  s.online, p.acked_at, p.started_at, p.finished_at
           FROM radio_playbacks p JOIN devices d ON d.id = p.device_id
           LEFT JOIN radio_cluster_state s ON s.device_id = p.device_id
           WHERE p.broadcast_id = %s ORDER BY p.unit_id, p.device_id""",
        (broadcast_id,),
    ).fetchall()
    clusters = []
    summary = {"full": 0, "partial": 0, "none": 0}
    for device, unit, name, state, pos, duration, reason, offline, online, acked, started, finished in rows:
        outcome, why = outcome_of(state, pos, duration, reason, offline, online)
        summary[outcome] += 1
        clusters.append(
            {
                "cluster_id": device,
                "cluster_name": name,
                "unit_id": unit,
                "state": state,
                "outcome": outcome,
                "reason": why,
                "position_s": pos,
                "duration_s": duration,
                "acked_at": acked,
                "started_at": started,
                "finished_at": finished,
            }  # fmt: skip
        )
    return {
        "broadcast_id": head[0], "title": head[1], "status": head[2], "urgent": head[3] == "urgent",
        "repeat": head[4], "created_at": head[5], "started_at": head[6], "ended_at": head[7],
        "clusters": clusters, "summary": summary,
    }  # fmt: skip


def settle(conn: psycopg.Connection, *, now: datetime, grace_s: float) -> list[int]:
    """Finish the broadcasts whose clusters have all settled (or stayed silent past the grace time);
    raise an alert for each cluster that did not play fully. Returns the finished broadcast ids."""
    grace = timedelta(seconds=grace_s)
    # Silent too long: accepted but never started, or playing past its end: judge on what was reported.
    # ``updated_at`` is the IOC's time of the cluster's last report: device clocks may be off.
    conn.execute(
        """UPDATE radio_playbacks SET state = 'interrupted', reason = coalesce(reason, 'no end reported'),
                  position_s = coalesce(position_s, least(duration_s, extract(epoch FROM (%(now)s - updated_at)))),
                  updated_at = %(now)s
           WHERE state = 'playing'
             AND updated_at + make_interval(secs => coalesce(duration_s, 0)) + %(grace)s < %(now)s""",
        {"now": now, "grace": grace},
    )
    conn.execute(
        "UPDATE radio_playbacks SET state = 'timeout', reason = 'accepted but never started', updated_at = %(now)s "
        "WHERE state = 'accepted' AND updated_at + %(grace)s < %(now)s",
        {"now": now, "grace": grace},
    )
    done = conn.execute(
        """SELECT b.id FROM radio_broadcasts b
           WHERE b.status IN ('playing', 'stopped') AND b.ended_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM radio_playbacks p WHERE p.broadcast_id = b.id
                             AND p.state NOT IN ('finished', 'interrupted', 'rejected', 'timeout', 'stopped'))
           ORDER BY b.id FOR UPDATE SKIP LOCKED""",
    ).fetchall()
    finished = []
    for (broadcast_id,) in done:
        conn.execute(
            "UPDATE radio_broadcasts SET status = CASE WHEN status = 'stopped' THEN 'stopped' ELSE 'finished' END, "
            "ended_at = %s, updated_at = %s WHERE id = %s",
            (now, now, broadcast_id),
        )
        report = proof(conn, broadcast_id)
        assert report is not None
        _alerts(conn, report, now)
        _live(conn, "broadcast.finished", broadcast_id, now, status=report["status"], summary=report["summary"])
        finished.append(broadcast_id)
    return finished


def _alerts(conn: psycopg.Connection, report: dict[str, Any], now: datetime) -> None:
    if report["status"] == "stopped":
        return  # an operator stopped it: the clusters did what they were told
    severity = Severity.SEVERE if report["urgent"] else Severity.MODERATE
    drafts = []
    for c in report["clusters"]:
        if c["outcome"] == "full":
            continue
        if c["outcome"] == "partial":
            title = f"Cụm loa {c['cluster_name']} phát dở bản tin «{report['title']}» ({c['reason']})"
        else:
            title = f"Cụm loa {c['cluster_name']} không phát bản tin «{report['title']}» ({c['reason']})"
        drafts.append(
            AlertDraft(
                kind=f"radio.playback_{c['outcome']}",
                severity=severity,
                title=title,
                at=now,
                unit_id=c["unit_id"],
                dedup_key=f"radio:{report['broadcast_id']}:{c['cluster_id']}",
                evidence={
                    "broadcast_id": report["broadcast_id"],
                    "cluster_id": c["cluster_id"],
                    "outcome": c["outcome"],
                    "reason": c["reason"],
                    "position_s": c["position_s"],
                },  # fmt: skip
                source_ref={"radio_broadcast": report["broadcast_id"], "cluster": c["cluster_id"]},
            )
        )
    raise_alerts(conn, drafts, now=now)


def _live(conn: psycopg.Connection, kind: str, broadcast_id: int, now: datetime, unit_id: str | None = None,
          **data: Any) -> None:  # fmt: skip
    notify(conn, LiveEvent(topic="radio", type=kind, unit_id=unit_id, at=now,
                           data={"broadcast_id": broadcast_id, **data}))  # fmt: skip
