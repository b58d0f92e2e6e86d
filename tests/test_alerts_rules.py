"""Alert rules from config/alert-rules.yaml applied to observations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from ioc.alerts.model import Severity
from ioc.alerts.rules import Observation, RuleBook, evaluate, load_rulebook, render
from ioc.alerts.store import fold_drafts

BOOK = load_rulebook(Path(__file__).resolve().parent.parent / "config" / "alert-rules.yaml")
AT = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def _camera(rule: str, zone: str = "san-truong") -> Observation:
    return Observation(
        source="camera_event", at=AT, unit_id="tra-kot", device_id="cam-tra-kot-school-01",
        device_kind="camera", device_name="Trường TH Trà Kót",
        fields={"rule": rule, "zone": zone, "score": 0.91, "snapshot_ref": "snap/a.jpg", "track_id": 7},
    )  # fmt: skip


def test_sample_rulebook_loads_with_its_policies() -> None:
    policies = BOOK.escalation_policies()
    assert {"default", "urgent", "device"} <= set(policies)
    assert all(rule.policy in policies for rule in BOOK.rules if rule.action == "raise")


def test_intrusion_raises_a_severe_alert_with_evidence_and_motion_raises_nothing() -> None:
    drafts, resolutions = evaluate(BOOK, [_camera("intrusion"), _camera("motion")])
    assert resolutions == []
    [draft] = drafts
    assert draft.kind == "camera.intrusion" and draft.severity is Severity.SEVERE
    assert draft.title == "Xâm nhập khu vực san-truong – camera Trường TH Trà Kót"
    assert draft.dedup_key == "camera.intrusion:cam-tra-kot-school-01:san-truong"
    assert draft.evidence["snapshot_ref"] == "snap/a.jpg" and draft.policy == "urgent"


def test_water_level_past_critical_is_one_severe_alert() -> None:
    obs = Observation(
        source="telemetry", at=AT, unit_id="tra-my", device_id="wl-song-tranh-01", device_kind="sensor",
        fields={"water_level_cm": 455.0}, levels={"warning": 300.0, "critical": 400.0},
    )  # fmt: skip
    drafts, _ = evaluate(BOOK, [obs])
    assert len(drafts) == 1 and drafts[0].title.endswith(": vượt mức báo động (455.0 cm)")
    folded = fold_drafts(drafts)
    assert len(folded) == 1 and folded[0].severity is Severity.SEVERE
    below, _ = evaluate(BOOK, [Observation(**{**obs.__dict__, "fields": {"water_level_cm": 120.0}})])
    assert below == []


def test_device_back_online_resolves_its_offline_alert() -> None:
    offline = Observation(source="presence", at=AT, unit_id="tra-ka", device_id="loa-tra-ka-02",
                          fields={"state": "offline", "reason": "last_will"})  # fmt: skip
    online = Observation(source="presence", at=AT, unit_id="tra-ka", device_id="loa-tra-ka-02",
                         fields={"state": "online"})  # fmt: skip
    drafts, _ = evaluate(BOOK, [offline])
    _, resolutions = evaluate(BOOK, [online])
    assert drafts[0].title == "Mất kết nối thiết bị loa-tra-ka-02"
    assert [r.dedup_key for r in resolutions] == [drafts[0].dedup_key]


def test_a_missing_template_field_shows_a_question_mark() -> None:
    assert render("{zone} / {nothing}", _camera("intrusion")) == "san-truong / ?"


def test_a_rule_with_an_unknown_source_is_refused() -> None:
    with pytest.raises(ValidationError, match="when.source"):
        RuleBook.model_validate({"rules": [{"id": "x", "when": {"source": "weather"}, "kind": "k", "dedup": "d"}]})
