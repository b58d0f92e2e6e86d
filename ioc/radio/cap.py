"""CAP -> radio: an *issued* warning for an area becomes an urgent broadcast to the communes it covers.

Safe by construction (docs/warnings.md): the radio service looks only at CAP messages that a person
issued (``cap_messages.issued_at``, set by :mod:`ioc.warnings.store`); an export of an alert or a
message received from outside plays nothing until someone issues it. Each issued message is looked
at once (``radio_cap_seen`` records the decision), and whatever the ``radio.cap`` policy says:

* ``status`` other than ``Actual`` (Test, Exercise, System, Draft) or a ``scope`` other than
  ``Public``: **never** played on a loudspeaker;
* a warning whose category is not a configured radio category (``config/warnings.yaml``), or that
  comes from a device-health alert, a citizen's report, camera evidence, or an alert that is closed,
  or that was cancelled: **never** played;
* ``Alert`` / ``Update``: an urgent broadcast to the communes the warning was routed to (exact
  areas, :mod:`ioc.areas`), playing the warning's recording or reading the headline and the
  instruction by text-to-speech when espeak-ng is installed; its commands expire with the CAP
  ``expires``. The ``radio.cap`` policy decides whether it is only *proposed* (an operator starts
  it) or *started* at once; an Update stops the broadcast of the message it updates;
* ``Cancel``: stops the broadcasts of the messages it references that are still playing, and
  withdraws their proposals (always allowed: stopping is safe).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

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
    #: Warning categories that may drive loudspeakers (those with ``radio`` in config/warnings.yaml).
    categories: frozenset[str] = frozenset()


def _info(message: CapMessage) -> Info | None:
    for info in message.infos:
        if info.language.lower().startswith("vi"):
            return info
    return message.infos[0] if message.infos else None


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


@dataclass(frozen=True)
class IssuedWarning:
    """What the radio needs to know about the warning an issued message belongs to."""

    id: int
    category: str
    state: str
    unit_ids: list[str]
    audio_id: int | None
    expires: datetime | None
    alert_kind: str | None
    alert_status: str | None


NEVER_PUBLIC_KINDS = ("device.", "report.", "camera.", "radio.", "warning.delivery")
ENDED_ALERT = ("resolved", "closed", "dismissed")


def refusal(message: CapMessage, warning: IssuedWarning | None, cap: CapPolicy) -> str | None:
    """Why this issued message must never play, whatever the policy; None when it may."""
    if message.status != "Actual":
        return f"never played: status {message.status}"
    if message.scope != "Public":
        return f"never played: scope {message.scope}"
    if message.msg_type == "Cancel":
        return None  # stopping is always allowed
    if warning is None:
        return "never played: not an issued warning"
    if warning.category not in cap.categories:
        return f"never played: category {warning.category} is not a radio warning category"
    if warning.alert_kind and warning.alert_kind.startswith(NEVER_PUBLIC_KINDS):
        return f"never played: an alert of kind {warning.alert_kind} is not a public warning"
    if warning.alert_status in ENDED_ALERT and warning.state != "cancelled":
        return f"never played: its alert is {warning.alert_status}"
    if warning.state == "cancelled":
        return "never played: the warning is cancelled"
    return None


def decide(conn: psycopg.Connection, message: CapMessage, refs: list[str], *, now: datetime, cap: CapPolicy,
           policy: RadioPolicy, warning: IssuedWarning | None = None) -> tuple[str, int | None]:  # fmt: skip
    """What one issued CAP message does to the loudspeakers: (decision, broadcast id)."""
    refused = refusal(message, warning, cap)
    if refused:
        return refused, None
    if message.msg_type == "Cancel":
        stopped = _stop_for(conn, _referenced_ids(refs), now=now, policy=policy, why="CAP Cancel")
        return f"cancel: stopped {stopped} broadcast(s)", None
    if cap.mode == "off":
        return "radio policy off", None
    if message.msg_type not in ("Alert", "Update"):
        return f"nothing to play: msgType {message.msg_type}", None
    if message.msg_type == "Update":
        _stop_for(conn, _referenced_ids(refs), now=now, policy=policy, why="CAP Update")
    info = _info(message)
    assert warning is not None
    units = list(warning.unit_ids)
    if not units or info is None:
        return "no commune in the area", None
    text = speech_text(info)
    audio_id = warning.audio_id
    if audio_id is None and content.tts_available():
        try:
            stored = content.store_audio(
                conn, cap.media_dir, content.synthesize(text), title=f"CAP {message.identifier}", created_by="cap",
                max_bytes=cap.max_audio_bytes, max_duration_s=cap.max_audio_s, source="tts", text=text,
            )  # fmt: skip
            audio_id = stored.id
        except (content.AudioRefused, content.TtsUnavailable, OSError) as exc:
            log.warning("radio: text-to-speech of CAP %s failed: %s", message.identifier, exc)
    expires = warning.expires or info.expires
    if expires is not None and expires <= now:
        return f"never played: expired at {expires.isoformat()}", None
    proposed = cap.mode == "propose" or audio_id is None
    broadcast_id = broadcasts.create(
        conn, title=(info.headline or info.event)[:200], text=text, audio_id=audio_id,
        targets={"unit_ids": units, "cluster_ids": [], "polygon": None}, repeat=cap.repeat, urgent=True,
        requested_by="cap", policy=policy, now=now, source="cap", cap_identifier=message.identifier,
        proposed=proposed, expires_at=expires,
    )  # fmt: skip
    return ("proposed" if proposed else "started"), broadcast_id


def _warning(conn: psycopg.Connection, warning_id: int | None) -> IssuedWarning | None:
    if warning_id is None:
        return None
    row = conn.execute(
        """SELECT w.id, w.category, w.state, w.unit_ids, (w.content->>'audio_id')::bigint, w.expires, a.kind, a.status
           FROM warnings w LEFT JOIN alerts a ON a.id = w.alert_id WHERE w.id = %s""",
        (warning_id,),
    ).fetchone()
    return IssuedWarning(row[0], row[1], row[2], list(row[3]), row[4], row[5], row[6], row[7]) if row else None


def process_cap(
    conn: psycopg.Connection, *, now: datetime, cap: CapPolicy, policy: RadioPolicy, limit: int = 20
) -> int:
    """Look at the issued CAP messages not yet seen; returns how many. Messages nobody issued (exports,
    received documents waiting for their issue act) are not even looked at."""
    rows = conn.execute(
        """SELECT m.id, m.xml, m.refs, m.warning_id FROM cap_messages m
           WHERE m.issued_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM radio_cap_seen s WHERE s.cap_message_id = m.id)
           ORDER BY m.id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (limit,),
    ).fetchall()
    for message_id, xml, refs, warning_id in rows:
        try:
            message = parse_cap(bytes(xml))
            decision, broadcast_id = decide(conn, message, list(refs), now=now, cap=cap, policy=policy,
                                            warning=_warning(conn, warning_id))  # fmt: skip
        except (ValueError, broadcasts.TargetError) as exc:
            decision, broadcast_id = f"not played: {exc}", None
        conn.execute(
            "INSERT INTO radio_cap_seen (cap_message_id, decision, broadcast_id, at) VALUES (%s, %s, %s, %s)",
            (message_id, decision[:500], broadcast_id, now),
        )
        log.info("radio: CAP message %s: %s", message_id, decision)
    return len(rows)
