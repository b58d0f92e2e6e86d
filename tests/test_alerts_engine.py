"""Alert store, lifecycle and escalation against the real database (each test rolls back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ioc.alerts.escalation import EscalationPolicy, EscalationStep, escalate_due
from ioc.alerts.lifecycle import InvalidAction, act
from ioc.alerts.model import AlertDraft, Severity, Status
from ioc.alerts.store import raise_alerts
from ioc.clock import ManualClock

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
POLICY = EscalationPolicy(
    "standard",
    (EscalationStep(timedelta(minutes=10), "operator"), EscalationStep(timedelta(minutes=30), "leader")),
)


@pytest.fixture()
def conn(db: psycopg.Connection) -> psycopg.Connection:
    db.execute(
        "INSERT INTO units (id, name, name_search, level) VALUES ('tra-kot', 'Trà Kót', 'tra kot', 'commune')"
        " ON CONFLICT DO NOTHING"
    )
    return db


def _hit(i: int, severity: Severity = Severity.MODERATE, key: str = "cam-01:intrusion:yard") -> AlertDraft:
    return AlertDraft(
        kind="camera.intrusion",
        severity=severity,
        title="Xâm nhập sân trường ngoài giờ",
        at=T0 + timedelta(seconds=i * 0.1),
        unit_id="tra-kot",
        dedup_key=key,
        evidence={"snapshot": f"snap/{i}.jpg"},
        source_ref={"camera_event": f"m{i}"},
        policy="standard",
    )


def _alert(conn: psycopg.Connection, alert_id: int) -> dict:
    cur = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def test_one_cause_repeated_500_times_is_one_alert_with_count_500(conn: psycopg.Connection) -> None:
    first = raise_alerts(conn, [_hit(i) for i in range(200)], now=T0, policies={"standard": POLICY})
    changes = [first]
    for start in range(200, 500, 100):
        changes.append(raise_alerts(conn, [_hit(i) for i in range(start, start + 100)], now=T0))
    ids = {c.id for batch in changes for c in batch}
    assert len(ids) == 1
    alert = _alert(conn, ids.pop())
    assert alert["count"] == 500
    assert alert["evidence"] == {"snapshot": "snap/499.jpg"}  # the latest occurrence's evidence
    assert alert["title_search"] == "xam nhap san truong ngoai gio"
    assert len(alert["source_refs"]) == 20 and alert["source_refs"][-1] == {"camera_event": "m499"}
    assert [c.action for batch in changes for c in batch] == ["created", "updated", "updated", "updated"]
    seqs = [c.seq for batch in changes for c in batch]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_severity_only_rises_and_other_causes_get_their_own_alert(conn: psycopg.Connection) -> None:
    a = raise_alerts(conn, [_hit(0, Severity.MINOR)], now=T0)[0]
    raise_alerts(conn, [_hit(1, Severity.SEVERE)], now=T0)
    raise_alerts(conn, [_hit(2, Severity.INFO)], now=T0)
    assert _alert(conn, a.id)["severity"] == "severe"
    other = raise_alerts(conn, [_hit(3, key="cam-02:crowd:market")], now=T0)[0]
    assert other.id != a.id


def test_lifecycle_is_recorded_in_the_audit_trail(conn: psycopg.Connection) -> None:
    clock = ManualClock(T0)
    alert = raise_alerts(conn, [_hit(0)], now=clock.now())[0]
    for action, actor in [("acknowledge", "canbo.trakot"), ("start", "canbo.trakot"), ("resolve", "canbo.trakot")]:
        clock.advance(60)
        act(conn, alert.id, action, actor=actor, now=clock.now(), note="đã xử lý" if action == "resolve" else None)
    with pytest.raises(InvalidAction, match="cannot acknowledge an alert that is resolved"):
        act(conn, alert.id, "acknowledge", actor="x", now=clock.now())
    final = act(conn, alert.id, "close", actor="vanhanh.ioc", now=clock.now())
    assert final.status is Status.CLOSED
    audit = conn.execute(
        "SELECT action, from_status, to_status, actor FROM alert_audit WHERE alert_id = %s ORDER BY id", (alert.id,)
    ).fetchall()
    assert audit == [
        ("created", None, "new", "system"),
        ("acknowledge", "new", "acknowledged", "canbo.trakot"),
        ("start", "acknowledged", "in_progress", "canbo.trakot"),
        ("resolve", "in_progress", "resolved", "canbo.trakot"),
        ("close", "resolved", "closed", "vanhanh.ioc"),
    ]
    row = _alert(conn, alert.id)
    assert row["acknowledged_at"] == T0 + timedelta(seconds=60)
    assert row["resolved_at"] == T0 + timedelta(seconds=180)
    # The trail cannot be rewritten.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("UPDATE alert_audit SET actor = 'someone' WHERE alert_id = %s", (alert.id,))


def test_after_resolution_the_same_cause_opens_a_new_alert(conn: psycopg.Connection) -> None:
    first = raise_alerts(conn, [_hit(0)], now=T0)[0]
    act(conn, first.id, "resolve", actor="op", now=T0)
    second = raise_alerts(conn, [_hit(1)], now=T0)[0]
    assert second.id != first.id and second.action == "created"
    with pytest.raises(InvalidAction, match=f"newer open alert #{second.id}"):
        act(conn, first.id, "reopen", actor="op", now=T0, note="chưa xong")


def test_dismissed_false_alarm_stays_quiet_for_the_suppression_window(conn: psycopg.Connection) -> None:
    first = raise_alerts(conn, [_hit(0)], now=T0)[0]
    with pytest.raises(InvalidAction, match="needs a note"):
        act(conn, first.id, "dismiss", actor="op", now=T0)
    act(conn, first.id, "dismiss", actor="op", now=T0, note="bóng cây lay động")
    quiet = raise_alerts(conn, [_hit(i) for i in range(1, 4)], now=T0 + timedelta(minutes=5))
    assert quiet == []
    assert _alert(conn, first.id)["count"] == 4
    later = raise_alerts(conn, [_hit(9)], now=T0 + timedelta(hours=1))
    assert later[0].id != first.id


def test_escalation_fires_at_the_configured_times_under_an_injected_clock(conn: psycopg.Connection) -> None:
    policies = {"standard": POLICY}
    clock = ManualClock(T0)
    alert = raise_alerts(conn, [_hit(0)], now=clock.now(), policies=policies)[0]
    quiet = raise_alerts(conn, [_hit(1)], now=clock.now(), policies=policies)[0]  # same alert
    assert quiet.id == alert.id
    clock.advance(timedelta(minutes=9, seconds=59))
    assert escalate_due(conn, clock.now(), policies) == []
    clock.advance(timedelta(seconds=1))
    [first] = escalate_due(conn, clock.now(), policies)
    assert (first.id, first.escalation_level) == (alert.id, 1)
    clock.advance(timedelta(minutes=20))
    [second] = escalate_due(conn, clock.now(), policies)
    assert second.escalation_level == 2
    clock.advance(timedelta(hours=1))
    assert escalate_due(conn, clock.now(), policies) == []  # top of the ladder
    notes = conn.execute(
        "SELECT data->>'target' FROM alert_audit WHERE alert_id = %s AND action = 'escalate' ORDER BY id",
        (alert.id,),
    ).fetchall()
    assert notes == [("operator",), ("leader",)]


def test_acknowledging_stops_escalation_and_a_late_job_catches_up_in_one_step(conn: psycopg.Connection) -> None:
    policies = {"standard": POLICY}
    acked = raise_alerts(conn, [_hit(0)], now=T0, policies=policies)[0]
    act(conn, acked.id, "acknowledge", actor="canbo", now=T0 + timedelta(minutes=1))
    late = raise_alerts(conn, [_hit(0, key="sensor-7:offline")], now=T0, policies=policies)[0]
    changes = escalate_due(conn, T0 + timedelta(hours=2), policies)
    assert [(c.id, c.escalation_level) for c in changes] == [(late.id, 2)]
