"""Sector feeds through the real broker and database: school registers, clinic figures and online
mentions become sector rows, and their thresholds raise one alert per cause for the right unit."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.testing import count, publisher, seed_devices, wait_for
from ingest.worker import Worker, WorkerConfig
from ioc.clock import LOCAL_TZ

CONFIG = Path(__file__).resolve().parent.parent / "config"


@pytest.fixture(scope="module")
def sector_db(database_factory: Callable[..., str]) -> str:
    return database_factory(migrated=True)


@contextmanager
def worker(db: str, broker: str, root: str) -> Iterator[Worker]:
    config = WorkerConfig(
        database_url=db, mqtt_url=broker, topic_root=root, share_group=None, session_expiry_s=0,
        client_id=f"test-sectors-{secrets.token_hex(4)}", batch_wait_s=0.02, presence_flush_s=0.0,
        alert_rules=CONFIG / "alert-rules.yaml", sector_thresholds=CONFIG / "sector-thresholds.yaml",
    )  # fmt: skip
    w = Worker(config)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: w.subscribed, 10)
        yield w
    finally:
        w.stop()
        thread.join(15)


def _msg(mid: str, ts: datetime | None = None, **fields: object) -> bytes:
    return json.dumps({"v": 1, "id": mid, "ts": (ts or datetime.now(UTC)).isoformat(), **fields}).encode()


def _rows(db: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _today() -> date:
    return datetime.now(LOCAL_TZ).date()


def test_low_attendance_alerts_once_per_school_and_day_in_the_schools_commune(sector_db: str, mqtt_url: str) -> None:
    root = f"t{secrets.token_hex(3)}/v1"
    seed_devices(sector_db, "xa-hoc-a", [("truong-a", "school")])
    seed_devices(sector_db, "xa-hoc-b", [("truong-b", "school")])
    day = _today() - timedelta(days=1)
    client = publisher(mqtt_url)
    listener = psycopg.connect(sector_db, autocommit=True)
    listener.execute("LISTEN ioc_events")
    with worker(sector_db, mqtt_url, root):
        a = f"{root}/xa-hoc-a/school/truong-a/event"
        b = f"{root}/xa-hoc-b/school/truong-b/event"
        low = _msg("a-1", day=day.isoformat(), pupils_enrolled=200, pupils_present=120)
        for _ in range(3):  # redelivered: stored once, alerted once
            client.publish(a, low, qos=1)
        # a corrected register for the same day, still low: replaces the row, no second alert
        client.publish(a, _msg("a-2", day=day.isoformat(), pupils_enrolled=200, pupils_present=130), qos=1)
        client.publish(a, _msg("a-3", day=_today().isoformat(), pupils_enrolled=200, pupils_present=190), qos=1)
        client.publish(b, _msg("b-1", day=day.isoformat(), pupils_enrolled=150, pupils_present=90), qos=1)
        client.publish(b, _msg("b-2", day=day.isoformat(), pupils_enrolled=150, pupils_present=200), qos=1)  # invalid

        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM school_attendance") == 3, 20)
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM alerts WHERE kind = 'school.attendance'") == 2,
                        20)  # fmt: skip
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM school_attendance WHERE school_id = 'truong-a'"
                                      " AND day = %s AND pupils_present = 130", (day,)) == 1, 20)  # fmt: skip
    client.loop_stop()
    client.disconnect()
    wanted = {("sector.education", "xa-hoc-a"), ("sector.education", "xa-hoc-b")}  # the wall reloads these tiles
    tiles: set[tuple[str, str]] = set()
    for note in listener.notifies(timeout=10.0):  # delivered already (committed): ends as soon as both are seen
        event = json.loads(note.payload)
        tiles.add((event["type"], event["unit_id"]))
        if wanted <= tiles:
            break
    listener.close()
    assert wanted <= tiles, tiles
    alerts = _rows(sector_db, "SELECT unit_id, count, dedup_key, evidence->>'attendance_pct' FROM alerts"
                   " WHERE kind = 'school.attendance' ORDER BY unit_id")  # fmt: skip
    assert [(u, n) for u, n, _, _ in alerts] == [("xa-hoc-a", 1), ("xa-hoc-b", 1)]
    assert alerts[0][2] == f"school.attendance:truong-a:{day.isoformat()}"
    assert alerts[0][3] == "60.0"  # the first register that crossed the threshold: 120/200
    letters = _rows(sector_db, "SELECT reason FROM dead_letters WHERE topic LIKE %s", (f"{root}/xa-hoc-b/%",))
    assert len(letters) == 1 and "pupils_present (200) is more than pupils_enrolled (150)" in letters[0][0]


def test_a_disease_cluster_alerts_once_for_its_commune_and_a_later_cluster_again(sector_db: str, mqtt_url: str) -> None:
    root = f"t{secrets.token_hex(3)}/v1"
    seed_devices(sector_db, "xa-dich-a", [("tram-a1", "clinic"), ("tram-a2", "clinic")])
    seed_devices(sector_db, "xa-dich-b", [("tram-b1", "clinic")])
    start = _today() - timedelta(days=30)
    client = publisher(mqtt_url)

    def clinic(unit: str, clinic_id: str, mid: str, day: date, **cases: int) -> None:
        body = _msg(mid, day=day.isoformat(), visits=20, vaccinations=3,
                    cases={k.replace("_", "-"): v for k, v in cases.items()})  # fmt: skip
        client.publish(f"{root}/{unit}/clinic/{clinic_id}/event", body, qos=1)

    def cluster_alerts(unit: str, disease: str) -> int:
        return count(sector_db, "SELECT count(*) FROM alerts WHERE kind = 'health.disease_cluster' AND unit_id = %s"
                     " AND evidence->>'disease' = %s", (unit, disease))  # fmt: skip

    with worker(sector_db, mqtt_url, root):
        # Hand, foot and mouth disease: 3 cases within 7 days make a cluster (config/sector-thresholds.yaml).
        clinic("xa-dich-a", "tram-a1", "a1-0", start, tay_chan_mieng=1)
        clinic("xa-dich-a", "tram-a2", "a2-1", start + timedelta(days=2), tay_chan_mieng=1)
        clinic("xa-dich-b", "tram-b1", "b1-1", start + timedelta(days=2), tay_chan_mieng=2, benh_la=40)
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM clinic_daily WHERE unit_id LIKE 'xa-dich-%%'")
                        == 3, 20)  # fmt: skip
        assert cluster_alerts("xa-dich-a", "tay-chan-mieng") == 0  # two cases: not yet
        clinic("xa-dich-a", "tram-a1", "a1-4", start + timedelta(days=4), tay_chan_mieng=1)
        assert wait_for(lambda: cluster_alerts("xa-dich-a", "tay-chan-mieng") == 1, 20)
        # The cluster goes on: more cases, even after its alert was resolved, raise nothing new.
        with psycopg.connect(sector_db) as conn:
            conn.execute("UPDATE alerts SET status = 'resolved' WHERE kind = 'health.disease_cluster'")
        clinic("xa-dich-a", "tram-a2", "a2-6", start + timedelta(days=6), tay_chan_mieng=2)
        clinic("xa-dich-a", "tram-a1", "a1-10", start + timedelta(days=10), tay_chan_mieng=1)
        # Measles: two cases within 21 days, in the other commune.
        clinic("xa-dich-b", "tram-b1", "b1-12", start + timedelta(days=12), soi=1)
        clinic("xa-dich-b", "tram-b1", "b1-20", start + timedelta(days=20), soi=1)
        assert wait_for(lambda: cluster_alerts("xa-dich-b", "soi") == 1, 20)
        # A new cluster after more than 7 days without a case: a new cause, a new alert.
        for offset in (20, 21, 22):
            clinic("xa-dich-a", "tram-a2", f"a2-{offset}", start + timedelta(days=offset), tay_chan_mieng=1)
        assert wait_for(lambda: cluster_alerts("xa-dich-a", "tay-chan-mieng") == 2, 20)
        # A corrected report of an old day is stored (replacing it) and alerts nothing.
        clinic("xa-dich-a", "tram-a1", "a1-4b", start + timedelta(days=4), tay_chan_mieng=2)
        assert wait_for(lambda: count(sector_db, "SELECT cases FROM disease_cases WHERE clinic_id = 'tram-a1'"
                                      " AND day = %s", (start + timedelta(days=4),)) == 2, 20)  # fmt: skip
    client.loop_stop()
    client.disconnect()
    assert cluster_alerts("xa-dich-b", "tay-chan-mieng") == 0  # 2 cases: below 3
    assert count(sector_db, "SELECT count(*) FROM alerts WHERE evidence->>'disease' = 'benh-la'") == 0  # not notifiable
    rows = _rows(sector_db, "SELECT dedup_key, evidence->>'first_day', (evidence->>'cases')::int, count FROM alerts"
                 " WHERE kind = 'health.disease_cluster' AND unit_id = 'xa-dich-a' ORDER BY first_seen")  # fmt: skip
    assert [r[0] for r in rows] == [
        f"health.cluster:xa-dich-a:tay-chan-mieng:{start.isoformat()}",
        f"health.cluster:xa-dich-a:tay-chan-mieng:{(start + timedelta(days=20)).isoformat()}",
    ]
    assert rows[0][2] == 3 and all(r[3] == 1 for r in rows)
    episode = _rows(sector_db, "SELECT evidence, last_at FROM sector_episodes WHERE dedup_key = %s", (rows[0][0],))
    assert episode[0][0] == 7  # 1 + 1 + 1 + 2 + 1 (+1 from the correction of day 4) cases of the first cluster


def test_a_spike_of_negative_mentions_alerts_once_with_the_mentions_as_evidence(sector_db: str, mqtt_url: str) -> None:
    root = f"t{secrets.token_hex(3)}/v1"
    seed_devices(sector_db, "huyen-tin", [("giam-sat-tin", "mention")])
    seed_devices(sector_db, "tra-son-t", [])
    with psycopg.connect(sector_db) as conn:
        conn.execute("UPDATE units SET name = 'Trà Sơn', parent_id = 'huyen-tin' WHERE id = 'tra-son-t'")
    topic = f"{root}/huyen-tin/mention/giam-sat-tin/event"
    now = datetime.now(UTC)
    negatives = [
        "Đường lên xã Trà Sơn sạt lở nghiêm trọng, xe không qua được",
        "Người dân bức xúc vì mất điện kéo dài",
        "Trạm y tế thiếu thuốc, bà con rất khổ",
        "Rác thải đổ bừa bãi gây ô nhiễm nguồn nước",
        "Cầu treo xuống cấp rất nguy hiểm cho học sinh",
        "Cán bộ hách dịch, hồ sơ chậm trễ",
    ]
    client = publisher(mqtt_url)
    with worker(sector_db, mqtt_url, root):
        client.publish(topic, _msg("p-1", now - timedelta(hours=2), source="baoquangnam.vn",
                                   url="https://baoquangnam.vn/p-1", title="Trường học mới khang trang, học sinh"
                                   " vui mừng"), qos=1)  # fmt: skip
        for i, title in enumerate(negatives[:4]):
            client.publish(topic, _msg(f"n-{i}", now - timedelta(minutes=50 - i), source="facebook",
                                       url=f"https://facebook.com/post/{i}", title=title), qos=1)  # fmt: skip
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM mentions WHERE sentiment = 'negative'") == 4,
                        20)  # fmt: skip
        assert count(sector_db, "SELECT count(*) FROM alerts WHERE kind = 'mentions.negative_spike'") == 0
        body = _msg("n-4", now - timedelta(minutes=10), source="facebook", url="https://facebook.com/post/4",
                    title=negatives[4])  # fmt: skip
        client.publish(topic, body, qos=1)
        client.publish(
            topic,
            _msg(
                "n-4-again",
                now - timedelta(minutes=9),
                source="zalo",
                url="https://facebook.com/post/4",
                title=negatives[4],
            ),
            qos=1,
        )  # the same URL
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM alerts WHERE kind = 'mentions.negative_spike'")
                        == 1, 20)  # fmt: skip
        client.publish(topic, _msg("n-5", now - timedelta(minutes=5), source="facebook",
                                   url="https://facebook.com/post/5", title=negatives[5]), qos=1)  # fmt: skip
        assert wait_for(lambda: count(sector_db, "SELECT count(*) FROM mentions WHERE sentiment = 'negative'") == 6,
                        20)  # fmt: skip
    client.loop_stop()
    client.disconnect()
    alerts = _rows(sector_db, "SELECT unit_id, evidence FROM alerts WHERE kind = 'mentions.negative_spike'")
    assert len(alerts) == 1  # the spike goes on: the sixth mention raises nothing new
    unit_id, evidence = alerts[0]
    assert unit_id == "huyen-tin"
    assert evidence["negative_mentions"] == 5
    assert {m["url"] for m in evidence["mentions"]} == {f"https://facebook.com/post/{i}" for i in range(5)}
    assert count(sector_db, "SELECT count(*) FROM mentions WHERE url = 'https://facebook.com/post/4'") == 1
    about = _rows(sector_db, "SELECT unit_id, tags FROM mentions WHERE url = 'https://facebook.com/post/0'")[0]
    assert about[0] == "tra-son-t"  # the commune named in the text
    assert "giao-thong" in about[1] and "thien-tai" in about[1]
    positive = _rows(sector_db, "SELECT sentiment, unit_id FROM mentions WHERE url = 'https://baoquangnam.vn/p-1'")
    assert positive == [("positive", "huyen-tin")]
