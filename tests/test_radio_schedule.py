"""Programmes in Asia/Ho_Chi_Minh: conflicts on the weekly circle, plays across midnight on the
device's own (injected) clock, and a cluster without a link that still plays its week and reports later."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from radio_support import wait_for, wav
from staff import app_settings, token

from feeds.radio.fleet import RadioFleet
from ioc.clock import LOCAL_TZ, ManualClock
from ioc.contract.radio import AudioRef, ScheduleItem
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.mqtt import BrokerAddress
from ioc.radio import broadcasts
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.schedules import Programme, conflicts, starts_between
from ioc.radio.service import RadioService
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"
SUNDAY = datetime(2026, 3, 1, tzinfo=LOCAL_TZ)  # a Sunday, local midnight
CLUSTERS = [("radio-tra-my-1", "tra-my"), ("radio-tra-my-2", "tra-my")]


def local(day_offset: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return SUNDAY + timedelta(days=day_offset, hours=hh, minutes=mm, seconds=ss)


def item(n: int, days: list[str], start: time, duration_s: float = 60.0) -> ScheduleItem:
    ref = AudioRef(id=1, sha256="0" * 64, url="/api/radio/audio/1/file", duration_s=duration_s)
    return ScheduleItem(item=f"s-{n}", schedule_id=n, title=f"p{n}", days=days, start=start, audio=ref)  # type: ignore[arg-type]


def test_a_programme_past_midnight_on_sunday_conflicts_with_monday_morning() -> None:
    late = Programme(1, "late", ("sun",), time(23, 50), 20 * 60, frozenset({"c1"}))
    monday = Programme(2, "monday", ("mon",), time(0, 5), 60, frozenset({"c1"}))
    after = Programme(3, "after", ("mon",), time(0, 10), 60, frozenset({"c1"}))
    elsewhere = Programme(4, "other cluster", ("mon",), time(0, 5), 60, frozenset({"c2"}))
    daily = Programme(5, "daily", ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), time(23, 55), 60,
                      frozenset({"c1", "c2"}))  # fmt: skip
    assert [(p.id, c) for p, c in conflicts(late, [monday, after, elsewhere, daily])] == [(2, "c1"), (5, "c1")]
    assert conflicts(after, [monday]) == []


def test_starts_are_found_by_local_day_and_time_whatever_the_utc_date() -> None:
    week = [item(1, ["sun"], time(23, 50)), item(2, ["mon"], time(0, 5)), item(3, ["sat"], time(23, 50))]
    found = starts_between(week, local(0, 23, 0), local(1, 1, 0))
    assert [(at.astimezone(LOCAL_TZ), i.item) for at, i in found] == [
        (local(0, 23, 50), "s-1"),
        (local(1, 0, 5), "s-2"),
    ]
    assert found[0][0] == datetime(2026, 3, 1, 16, 50, tzinfo=UTC)  # 23:50 in Hà Nội is 16:50 UTC
    # 23:50 UTC Sunday is 06:50 Monday in Hà Nội: nothing starts then.
    utc_evening = datetime(2026, 3, 1, 23, 45, tzinfo=UTC)
    assert starts_between(week, utc_evening, utc_evening + timedelta(minutes=10)) == []


class Setup:
    def __init__(self, url: str, client: TestClient, fleet: RadioFleet, clock: ManualClock) -> None:
        self.url, self.client, self.fleet, self.clock = url, client, fleet, clock
        self.headers = {"Authorization": f"Bearer {token(client, url, 'operator')}"}

    def plays(self, device: str) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "SELECT event, schedule_id, scheduled_for, at, buffered FROM radio_plays WHERE device_id = %s "
                "ORDER BY at, id",
                (device,),
            ).fetchall()


@pytest.fixture(scope="module")
def setup(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory,
          mqtt_share_group_prefix: str) -> Iterator[Setup]:  # fmt: skip
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    tag = secrets.token_hex(3)
    root = f"rs{tag}/v1"
    address = BrokerAddress.from_url(mqtt_url)
    group = mqtt_share_group_prefix and f"rs{tag}"
    service = RadioService(url, address, policy=RadioPolicy(ack_timeout_s=1.0, max_attempts=3), root=root,
                           share_group=group, client_id=f"rs-{tag}", tick_s=0.1, session_expiry_s=0)  # fmt: skip
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    assert service.subscribed.wait(15)
    clock = ManualClock(local(0, 23, 59, 0))  # the devices' own clock: Sunday 23:59 in Hà Nội
    fleet = RadioFleet(CLUSTERS, address, root=root, clock=clock)
    fleet.start()
    assert fleet.wait_connected(20) == []
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"), mqtt_topic_root=root)
    try:
        with TestClient(create_app(settings)) as client:
            yield Setup(url, client, fleet, clock)
    finally:
        fleet.stop()
        service.stopping.set()
        runner.join(5)
        service.stop()


def test_schedule_across_midnight_plays_at_local_times_even_on_a_cluster_without_link(setup: Setup) -> None:
    client, headers = setup.client, setup.headers
    audio = client.post("/api/radio/audio", headers=headers, files={"file": ("dem.wav", wav(2.0), "audio/wav")})
    assert audio.status_code == 201, audio.text
    audio_id = audio.json()["id"]
    ids = [c for c, _ in CLUSTERS]
    night = client.post(
        "/api/radio/schedules",
        headers=headers,
        json={
            "title": "Bản tin cuối ngày",
            "audio_id": audio_id,
            "cluster_ids": ids,
            "days": ["sun"],
            "start": "23:59:59",
        },
    )
    assert night.status_code == 201, night.text
    assert night.json()["length_s"] == pytest.approx(2.0, abs=0.01)  # 23:59:59 to 00:00:01 on Monday
    morning = client.post(
        "/api/radio/schedules",
        headers=headers,
        json={"title": "Thể dục buổi sáng", "audio_id": audio_id, "cluster_ids": ids, "start": "00:00:30"},
    )  # daily
    assert morning.status_code == 201, morning.text
    clash = client.post(
        "/api/radio/schedules",
        headers=headers,
        json={
            "title": "Trùng",
            "audio_id": audio_id,
            "cluster_ids": ["radio-tra-my-2"],
            "days": ["mon"],
            "start": "00:00:00",
        },
    )
    assert clash.status_code == 409, clash.text
    assert f"chương trình {night.json()['id']}" in clash.json()["detail"] and "radio-tra-my-2" in clash.json()["detail"]

    # Both clusters store their week (sync_schedule acknowledged, the version reported back).
    def synced() -> bool:
        with psycopg.connect(setup.url) as conn:
            rows = conn.execute("SELECT schedule_version = synced_version FROM radio_cluster_state "
                                "WHERE device_id = ANY(%s)", (ids,)).fetchall()  # fmt: skip
        return len(rows) == 2 and all(r[0] for r in rows)

    wait_for(synced, 20, "both clusters to store their week")
    assert [i.start for i in setup.fleet["radio-tra-my-2"].week] == [time(23, 59, 59), time(0, 0, 30)]

    offline = setup.fleet["radio-tra-my-2"]
    offline.link_down()  # the link is lost: the cluster keeps its clock and its week
    setup.clock.set(local(0, 23, 59, 58))
    for cluster in setup.fleet.clusters.values():
        wait_for(lambda c=cluster: c.last_tick >= local(0, 23, 59, 58), 10, "the clusters to look at 23:59:58")
    assert setup.plays("radio-tra-my-1") == []  # not yet: 23:59:58
    setup.clock.set(local(1, 0, 0, 5))  # Monday 00:00:05

    def finished(device: str, n: int) -> Callable[[], bool]:
        return lambda: sum(p[0] == "playback.finished" for p in setup.plays(device)) >= n

    wait_for(finished("radio-tra-my-1", 1), 15, "the night programme on the linked cluster")
    events = setup.plays("radio-tra-my-1")
    assert [(e, s) for e, s, *_ in events] == [("playback.started", night.json()["id"]),
                                               ("playback.finished", night.json()["id"])]  # fmt: skip
    started, done = events
    assert started[2] == local(0, 23, 59, 59) and started[3] == local(0, 23, 59, 59)  # Sunday, local
    assert done[3] == local(1, 0, 0, 1)  # ended on Monday, past midnight
    assert not started[4] and not done[4]

    wait_for(lambda: offline.buffered >= 2, 15, "the unlinked cluster to play (started, finished)")
    assert setup.plays("radio-tra-my-2") == []  # it played, but nobody heard from it yet
    offline.link_up()
    wait_for(finished("radio-tra-my-2", 1), 15, "the unlinked cluster's buffered reports")
    late = setup.plays("radio-tra-my-2")
    assert [(e, s, sf, b) for e, s, sf, _, b in late] == [
        ("playback.started", night.json()["id"], local(0, 23, 59, 59), True),
        ("playback.finished", night.json()["id"], local(0, 23, 59, 59), True),
    ]

    setup.clock.set(local(1, 0, 0, 40))  # the daily programme, Monday 00:00:30
    wait_for(finished("radio-tra-my-1", 2), 15, "the daily morning programme")
    morning_play = [p for p in setup.plays("radio-tra-my-1") if p[1] == morning.json()["id"]]
    assert morning_play[0][2] == local(1, 0, 0, 30)


def test_an_urgent_broadcast_preempts_the_programme_playing(setup: Setup) -> None:
    client, headers = setup.client, setup.headers
    long_audio = client.post("/api/radio/audio", headers=headers, files={"file": ("dai.wav", wav(6.0), "audio/wav")})
    short_audio = client.post("/api/radio/audio", headers=headers, files={"file": ("ngan.wav", wav(1.0), "audio/wav")})
    programme = client.post(
        "/api/radio/schedules",
        headers=headers,
        json={"title": "Ca nhạc", "audio_id": long_audio.json()["id"], "cluster_ids": ["radio-tra-my-1"],
              "start": "00:01:00"},
    )  # fmt: skip
    assert programme.status_code == 201, programme.text

    def synced() -> bool:
        cluster = setup.fleet["radio-tra-my-1"]
        return any(i.schedule_id == programme.json()["id"] for i in cluster.week)

    wait_for(synced, 15, "the new week on the cluster")
    setup.clock.set(local(1, 0, 1, 5))
    wait_for(lambda: any(p[1] == programme.json()["id"] for p in setup.plays("radio-tra-my-1")), 10, "the programme")
    with psycopg.connect(setup.url) as conn:
        broadcast_id = broadcasts.create(
            conn, title="Khẩn cấp", text=None, audio_id=short_audio.json()["id"],
            targets={"cluster_ids": ["radio-tra-my-1"]}, repeat=1, urgent=True, requested_by="op",
            policy=RadioPolicy(ack_timeout_s=1.0, max_attempts=3), now=datetime.now(UTC),
        )  # fmt: skip

    def proof() -> dict | None:
        with psycopg.connect(setup.url) as conn:
            report = broadcasts.proof(conn, broadcast_id)
        return report if report and report["status"] == "finished" else None

    report = wait_for(proof, 20, "the urgent broadcast to finish")
    assert report["summary"] == {"full": 1, "partial": 0, "none": 0}, [
        (c["reason"], c["position_s"]) for c in report["clusters"]
    ]  # type: ignore[index]
    with psycopg.connect(setup.url) as conn:
        cut = conn.execute(
            "SELECT reason, position_s FROM radio_plays WHERE schedule_id = %s AND event = 'playback.interrupted'",
            (programme.json()["id"],),
        ).fetchone()
    assert cut is not None and cut[0] == "preempted" and 0 < cut[1] < 6.0
