"""Satisfaction arrives as `rated` dossier events over MQTT: the latest verdict of a dossier counts,
a rating without a verdict is dead-lettered with the reason, and the rollup follows."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import ValidationError

from ingest.testing import count, publisher, seed_devices, wait_for
from ingest.worker import Worker, WorkerConfig
from ioc.clock import LOCAL_TZ
from ioc.contract.schemas import DossierEventV1
from ioc.kpi.rollups import differences, tile_figures


def test_a_rating_needs_a_verdict_and_only_a_rating_has_one() -> None:
    base = {"v": 1, "id": "m1", "ts": "2026-10-05T10:00:00+07:00", "dossier_id": "H-9"}
    rated = DossierEventV1.model_validate_json(json.dumps({**base, "event": "rated", "satisfied": False}))
    assert rated.satisfied is False
    with pytest.raises(ValidationError, match="satisfied"):
        DossierEventV1.model_validate_json(json.dumps({**base, "event": "rated"}))
    with pytest.raises(ValidationError, match="satisfied"):
        DossierEventV1.model_validate_json(json.dumps({**base, "event": "resolved", "satisfied": True}))


def _event(mid: str, ts: datetime, **fields: object) -> bytes:
    return json.dumps({"v": 1, "id": mid, "ts": ts.isoformat(), **fields}).encode()


def test_latest_rating_counts_and_a_rating_without_verdict_is_dead_lettered(
    database_factory: Callable[..., str], mqtt_url: str
) -> None:
    db = database_factory(migrated=True)
    root = f"t{secrets.token_hex(3)}/v1"
    seed_devices(db, "xa-hai-long", [("int-mot-cua-hl", "dossier")])
    config = WorkerConfig(
        database_url=db, mqtt_url=mqtt_url, topic_root=root, share_group=None, session_expiry_s=0,
        client_id=f"test-rated-{secrets.token_hex(4)}", batch_wait_s=0.02, presence_flush_s=0.0,
    )  # fmt: skip
    worker = Worker(config)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    client = publisher(mqtt_url)
    # Inside the current month, whose partition exists: two hours ago, in local time.
    start = datetime.now(UTC).astimezone(LOCAL_TZ).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    topic = f"{root}/xa-hai-long/dossier/int-mot-cua-hl/event"
    try:
        assert wait_for(lambda: worker.subscribed, 10)
        messages = [  # out of order: the second verdict arrives before the first and before the receipt
            _event("r2", start + timedelta(minutes=50), dossier_id="HL-1", event="rated", satisfied=True),
            _event("r1", start + timedelta(minutes=40), dossier_id="HL-1", event="rated", satisfied=False),
            _event("x1", start + timedelta(minutes=20), dossier_id="HL-1", event="resolved"),
            _event("x0", start, dossier_id="HL-1", event="received", channel="direct"),
            _event("bad", start + timedelta(minutes=55), dossier_id="HL-1", event="rated"),
        ]
        for message in messages:
            client.publish(topic, message, qos=1)
        assert wait_for(lambda: count(db, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%%satisfied%%'") == 1,
                        15)  # fmt: skip
        assert wait_for(lambda: count(db, "SELECT count(*) FROM dossier_events WHERE dossier_id = 'HL-1'") == 4, 15)
    finally:
        worker.stop()
        thread.join(15)
        client.loop_stop()
        client.disconnect()
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT status, satisfied, rated_at FROM dossiers WHERE id = 'HL-1'").fetchone()
        assert row == ("resolved", True, start + timedelta(minutes=50))
        day = start.date()
        figures = tile_figures(conn, day, day, ["xa-hai-long"])["xa-hai-long"]
        assert (figures["rated"], figures["rated_satisfied"], figures["satisfaction_rate"]) == (1, 1, 100.0)
        assert differences(conn, day, day) == []
