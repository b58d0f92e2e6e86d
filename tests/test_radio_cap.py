"""CAP -> radio: an issued Actual alert over communes proposes (or starts) an urgent broadcast there;
a received message nobody issued plays nothing; Test, Exercise and Draft messages never play; a
Cancel stops the broadcast still playing."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
import soundfile

from ioc.cap.importer import apply_cap
from ioc.cap.parse import parse_cap
from ioc.district.bootstrap import load_district_into
from ioc.mqtt import BrokerAddress
from ioc.radio import broadcasts, content
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.cap import CapPolicy
from ioc.radio.service import RadioService
from ioc.settings import Settings
from ioc.warnings import store
from ioc.warnings.config import load_warnings_config

CONFIG = Path(__file__).resolve().parent.parent / "config"
SENDER = "kttv@quangnam.gov.vn"
SENT = "2026-10-20T08:00:00+07:00"
WARNINGS = load_warnings_config(CONFIG / "warnings.yaml")
ISSUER = store.Issuer("ioc@bactramy.example.vn", "IOC", WARNINGS)


def cap(identifier: str, msg_type: str = "Alert", *, status: str = "Actual", references: str | None = None) -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{SENDER}</sender><sent>{SENT}</sent>
  <status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ quét</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty>
    <headline>Lũ quét trên sông Trường</headline>
    <instruction>Di dời người dân khỏi khu vực ven suối.</instruction>
    <area><areaDesc>Xã Trà Kót</areaDesc>
      <polygon>15.41,108.04 15.41,108.09 15.45,108.09 15.45,108.04 15.41,108.04</polygon></area>
  </info>
</alert>""".encode()


@pytest.fixture(scope="module")
def seeded(database_factory: Callable[..., str]) -> str:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    return url


def service(url: str, mqtt_url: str, mode: str, tmp_path: Path) -> RadioService:
    # Not started: tick() alone turns CAP messages into broadcasts (commands wait in the table).
    return RadioService(url, BrokerAddress.from_url(mqtt_url), policy=RadioPolicy(),
                        cap=CapPolicy(mode=mode, repeat=2, media_dir=tmp_path,
                                      categories=WARNINGS.radio_categories()))  # fmt: skip


def receive(url: str, xml: bytes, *, issue: bool = True) -> None:
    """Receive a CAP document; then two people issue it (a received Alert plays nothing until then)."""
    message = parse_cap(xml)
    with psycopg.connect(url) as conn:
        apply_cap(conn, message, xml, now=datetime.now(UTC), warnings=WARNINGS, issuer=ISSUER)
        if issue and message.msg_type != "Cancel":
            (warning_id,) = conn.execute(  # type: ignore[misc]
                "SELECT warning_id FROM cap_messages WHERE identifier = %s", (message.identifier,)).fetchone()
            first = store.issue(conn, warning_id, by="operator1", now=datetime.now(UTC), issuer=ISSUER)
            if first["state"] == "awaiting_confirmation":  # Actual, Public: a second person issues it
                store.issue(conn, warning_id, by="leader1", now=datetime.now(UTC), issuer=ISSUER)


def decisions(url: str) -> dict[str, tuple[str, int | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.identifier, s.decision, s.broadcast_id FROM radio_cap_seen s "
            "JOIN cap_messages m ON m.id = s.cap_message_id"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.parametrize("status", ["Test", "Exercise", "Draft"])
def test_test_exercise_and_draft_messages_never_reach_a_loudspeaker(seeded: str, mqtt_url: str, tmp_path: Path,
                                                                    status: str) -> None:  # fmt: skip
    identifier = f"KTTV-{status}"
    if status == "Draft":
        # The importer refuses drafts (nothing is stored, so nothing can play); decide() still says no.
        from ioc.radio.cap import decide

        with psycopg.connect(seeded) as conn:
            verdict = decide(conn, parse_cap(cap(identifier, status=status)), [], now=datetime.now(UTC),
                             cap=CapPolicy(mode="start"), policy=RadioPolicy())  # fmt: skip
            conn.rollback()
        assert verdict == ("never played: status Draft", None)
        return
    receive(seeded, cap(identifier, status=status))
    radio = service(seeded, mqtt_url, "start", tmp_path)
    radio.tick()
    assert decisions(seeded)[identifier] == (f"never played: status {status}", None)
    with psycopg.connect(seeded) as conn:
        assert (
            conn.execute("SELECT count(*) FROM radio_broadcasts WHERE cap_identifier = %s", (identifier,)).fetchone()[0]
            == 0
        )  # type: ignore[index]


def test_a_received_alert_nobody_issued_plays_nothing(seeded: str, mqtt_url: str, tmp_path: Path) -> None:
    receive(seeded, cap("KTTV-NOT-ISSUED"), issue=False)
    service(seeded, mqtt_url, "start", tmp_path).tick()
    assert "KTTV-NOT-ISSUED" not in decisions(seeded)
    with psycopg.connect(seeded) as conn:
        assert conn.execute("SELECT count(*) FROM radio_broadcasts WHERE cap_identifier = 'KTTV-NOT-ISSUED'"
                            ).fetchone() == (0,)  # fmt: skip


def test_actual_alert_proposes_a_broadcast_to_the_communes_and_cancel_stops_it(seeded: str, mqtt_url: str,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    receive(seeded, cap("KTTV-9"))
    radio = service(seeded, mqtt_url, "propose", tmp_path)
    radio.tick()
    decision, broadcast_id = decisions(seeded)["KTTV-9"]
    assert decision == "proposed" and broadcast_id is not None
    with psycopg.connect(seeded) as conn:
        status, kind, text, targets, repeat, source = conn.execute(
            "SELECT status, kind, text, targets, repeat, source FROM radio_broadcasts WHERE id = %s", (broadcast_id,)
        ).fetchone()  # type: ignore[misc]
        assert (status, kind, repeat, source) == ("proposed", "urgent", 2, "cap")
        assert text == "Lũ quét trên sông Trường. Di dời người dân khỏi khu vực ven suối."
        assert "tra-kot" in targets["unit_ids"]
        assert all(c.startswith("radio-tra-") for c in targets["clusters"])
        assert (
            conn.execute("SELECT count(*) FROM radio_commands WHERE broadcast_id = %s", (broadcast_id,)).fetchone()[0]
            == 0
        )  # a proposal sends nothing  # type: ignore[index]

        # An operator starts it with a recording (no text-to-speech needed).
        buffer = io.BytesIO()
        soundfile.write(buffer, np.zeros(16_000, dtype="float32"), 16_000, format="WAV")
        audio = content.store_audio(conn, tmp_path, buffer.getvalue(), title="ghi âm", created_by="op",
                                    max_bytes=10**7, max_duration_s=60)  # fmt: skip
        broadcasts.confirm(conn, broadcast_id, by="operator1", policy=RadioPolicy(), now=datetime.now(UTC),
                           audio_id=audio.id)  # fmt: skip
        conn.commit()
        assert conn.execute("SELECT status FROM radio_broadcasts WHERE id = %s", (broadcast_id,)).fetchone() == (
            "playing",)  # fmt: skip

    receive(seeded, cap("KTTV-10", "Cancel", references=f"{SENDER},KTTV-9,{SENT}"))
    radio.tick()
    assert decisions(seeded)["KTTV-10"] == ("cancel: stopped 1 broadcast(s)", None)
    with psycopg.connect(seeded) as conn:
        status, reason, ended = conn.execute(
            "SELECT status, reason, ended_at FROM radio_broadcasts WHERE id = %s", (broadcast_id,)
        ).fetchone()  # type: ignore[misc]
        unsent = conn.execute("SELECT count(*) FROM radio_commands WHERE broadcast_id = %s AND command = 'play' "
                              "AND state IN ('pending', 'sent')", (broadcast_id,)).fetchone()[0]  # fmt: skip
    assert (status, reason) == ("stopped", "CAP Cancel")
    assert ended is not None and unsent == 0  # nothing more goes out; the proof is final


def test_start_policy_starts_at_once_when_speech_is_available(seeded: str, mqtt_url: str, tmp_path: Path) -> None:
    receive(seeded, cap("KTTV-20"))
    radio = service(seeded, mqtt_url, "start", tmp_path)
    radio.tick()
    decision, broadcast_id = decisions(seeded)["KTTV-20"]
    if not content.tts_available():
        assert decision == "proposed"  # no espeak-ng: an operator must choose a recording
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng): the CAP alert was only proposed")
    assert decision == "started"
    with psycopg.connect(seeded) as conn:
        assert conn.execute("SELECT status FROM radio_broadcasts WHERE id = %s", (broadcast_id,)).fetchone() == (
            "playing",)  # fmt: skip
