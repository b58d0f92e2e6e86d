"""CAP -> radio: an alert for an area becomes an urgent broadcast to the communes it covers.

Every CAP message stored by the IOC (imported or issued, table ``cap_messages``) is looked at once
(``radio_cap_seen`` records the decision):

* ``status`` other than ``Actual`` (Test, Exercise, System, Draft) or a ``scope`` other than
  ``Public``: **never** played on a loudspeaker;
* ``Alert`` / ``Update`` whose area covers communes: an urgent broadcast to them, reading the
  headline and the instruction by text-to-speech when espeak-ng is installed. The district's
  ``radio.cap`` policy decides whether it is only *proposed* (an operator starts it, choosing a
  recording if there is no speech) or *started* at once; an Update stops the broadcast of the
  message it updates;
* ``Cancel``: stops the broadcasts of the messages it references that are still playing, and
  withdraws their proposals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from shapely.geometry import Point, Polygon, shape
from shapely.ops import unary_union

from ioc.cap.model import CapMessage, Info
from ioc.cap.parse import parse_cap
from ioc.radio import broadcasts, content
from ioc.radio.broadcasts import RadioPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapPolicy:
    mode: str = "off"  # off | propose | start
    repeat: int = 2
    media_dir: Path = field(default_factory=lambda: Path("var/media"))
    max_audio_bytes: int = 50_000_000
    max_audio_s: float = 1800.0


def _info(message: CapMessage) -> Info | None:
    for info in message.infos:
        if info.language.lower().startswith("vi"):
            return info
    return message.infos[0] if message.infos else None


def covered_units(conn: psycopg.Connection, info: Info | None) -> list[str]:
    """Leaf units (today's) whose polygon meets the CAP area."""
    shapes = []
    for area in info.areas if info else []:
        shapes += [Polygon([(lon, lat) for lat, lon in ring]) for ring in area.polygons if len(ring) >= 4]
        shapes += [Point(lon, lat).buffer(max(r, 0.05) / 111.0) for lat, lon, r in area.circles]
    if not shapes:
        return []
    zone = unary_union(shapes)
    rows = conn.execute(
        "SELECT id, parent_id, geometry FROM units WHERE valid_to IS NULL AND geometry IS NOT NULL"
    ).fetchall()
    parents = {r[1] for r in rows if r[1]}
    return sorted(r[0] for r in rows if r[0] not in parents and shape(r[2]).intersects(zone))


def speech_text(info: Info) -> str:
    parts = [p.strip() for p in (info.headline or info.event, info.instruction) if p and p.strip()]
    return ". ".join(parts)


def _referenced_ids(refs: list[str]) -> list[str]:
    return [r.split(",")[1] for r in refs if r.count(",") >= 2]


def _stop_for(conn: psycopg.Connection, identifiers: list[str], *, now: datetime, policy: RadioPolicy,
              why: str) -> int:  # fmt: skip
    rows = conn.execute(
        "SELECT id FROM radio_broadcasts WHERE cap_identifier = ANY(%s) "
        "AND status IN ('playing', 'pending', 'proposed', 'awaiting_confirmation')",
        (identifiers,),
    ).fetchall()
    for (broadcast_id,) in rows:
        broadcasts.stop(conn, broadcast_id, by="cap", policy=policy, now=now, reason=why)
    return len(rows)


def decide(conn: psycopg.Connection, message: CapMessage, refs: list[str], *, now: datetime, cap: CapPolicy,
           policy: RadioPolicy) -> tuple[str, int | None]:  # fmt: skip
    """What one CAP message does to the loudspeakers: (decision, broadcast id)."""
    if cap.mode == "off":
        return "radio policy off", None
    if message.status != "Actual":
        return f"never played: status {message.status}", None
    if message.scope != "Public":
        return f"never played: scope {message.scope}", None
    if message.msg_type == "Cancel":
        stopped = _stop_for(conn, _referenced_ids(refs), now=now, policy=policy, why="CAP Cancel")
        return f"cancel: stopped {stopped} broadcast(s)", None
    if message.msg_type not in ("Alert", "Update"):
        return f"nothing to play: msgType {message.msg_type}", None
    if message.msg_type == "Update":
        _stop_for(conn, _referenced_ids(refs), now=now, policy=policy, why="CAP Update")
    info = _info(message)
    units = covered_units(conn, info)
    if not units or info is None:
        return "no commune in the area", None
    text = speech_text(info)
    audio_id = None
    if content.tts_available():
        try:
            stored = content.store_audio(
                conn, cap.media_dir, content.synthesize(text), title=f"CAP {message.identifier}", created_by="cap",
                max_bytes=cap.max_audio_bytes, max_duration_s=cap.max_audio_s, source="tts", text=text,
            )  # fmt: skip
            audio_id = stored.id
        except (content.AudioRefused, content.TtsUnavailable, OSError) as exc:
            log.warning("radio: text-to-speech of CAP %s failed: %s", message.identifier, exc)
    proposed = cap.mode == "propose" or audio_id is None
    broadcast_id = broadcasts.create(
        conn, title=(info.headline or info.event)[:200], text=text, audio_id=audio_id,
        targets={"unit_ids": units, "cluster_ids": [], "polygon": None}, repeat=cap.repeat, urgent=True,
        requested_by="cap", policy=policy, now=now, source="cap", cap_identifier=message.identifier,
        proposed=proposed,
    )  # fmt: skip
    return ("proposed" if proposed else "started"), broadcast_id


def process_cap(
    conn: psycopg.Connection, *, now: datetime, cap: CapPolicy, policy: RadioPolicy, limit: int = 20
) -> int:
    """Look at the CAP messages not yet seen; returns how many."""
    rows = conn.execute(
        """SELECT m.id, m.xml, m.refs FROM cap_messages m
           WHERE NOT EXISTS (SELECT 1 FROM radio_cap_seen s WHERE s.cap_message_id = m.id)
           ORDER BY m.id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (limit,),
    ).fetchall()
    for message_id, xml, refs in rows:
        try:
            message = parse_cap(bytes(xml))
            decision, broadcast_id = decide(conn, message, list(refs), now=now, cap=cap, policy=policy)
        except (ValueError, broadcasts.TargetError) as exc:
            decision, broadcast_id = f"not played: {exc}", None
        conn.execute(
            "INSERT INTO radio_cap_seen (cap_message_id, decision, broadcast_id, at) VALUES (%s, %s, %s, %s)",
            (message_id, decision[:500], broadcast_id, now),
        )
        log.info("radio: CAP message %s: %s", message_id, decision)
    return len(rows)
