"""Urgent broadcasts over the simulated fleet (13 units x 5 clusters), with a real broker and database:
who played it, who did not and why, retries and time-outs, alerts for the failures."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from radio_support import wait_for, wav
from staff import app_settings, token

from feeds.radio.device import Faults
from feeds.radio.fleet import RadioFleet
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.hub.events import CHANNEL, decode
from ioc.mqtt import BrokerAddress
from ioc.radio import broadcasts, content
from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.service import RadioService
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"
POLICY = RadioPolicy(ack_timeout_s=1.0, max_attempts=2, playback_grace_s=15.0)
TARGETS = ["tra-son", "tra-kot", "tra-nu"]
FAULTS = {
    "radio-tra-son-5": Faults(offline=True),
    "radio-tra-kot-5": Faults(offline=True),
    "radio-tra-nu-4": Faults(reject="amplifier fault"),
    "radio-tra-kot-2": Faults(stop_at=0.5),
    "radio-tra-nu-2": Faults(no_answer=True),
}


class World:
    def __init__(self, url: str, root: str, service: RadioService, fleet: RadioFleet, media: Path) -> None:
        self.url, self.root, self.service, self.fleet, self.media = url, root, service, fleet, media

    def scalar(self, sql: str, *args: object) -> object:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql, args).fetchone()
            return row[0] if row else None

    def audio(self, seconds: float) -> int:
        with psycopg.connect(self.url) as conn:
            return content.store_audio(conn, self.media, wav(seconds), title="Bản tin thử", created_by="test",
                                       max_bytes=10_000_000, max_duration_s=600).id  # fmt: skip

    def broadcast(self, audio_id: int, **targets: object) -> int:
        with psycopg.connect(self.url) as conn:
            return broadcasts.create(
                conn, title="Cảnh báo lũ quét", text=None, audio_id=audio_id,
                targets={"unit_ids": [], "cluster_ids": [], "polygon": None, **targets}, repeat=1, urgent=True,
                requested_by="operator-test", policy=POLICY, now=datetime.now(UTC),
            )  # fmt: skip

    def finished(self, broadcast_id: int, timeout_s: float = 60.0) -> dict:
        wait_for(lambda: self.scalar("SELECT ended_at FROM radio_broadcasts WHERE id = %s", broadcast_id),
                 timeout_s, f"broadcast {broadcast_id} to finish")  # fmt: skip
        with psycopg.connect(self.url) as conn:
            report = broadcasts.proof(conn, broadcast_id)
        assert report is not None
        return report


@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory,
          mqtt_share_group_prefix: str) -> Iterator[World]:  # fmt: skip
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    tag = secrets.token_hex(3)
    root = f"rt{tag}/v1"  # a topic tree of our own: no retained message of another run reaches us
    address = BrokerAddress.from_url(mqtt_url)
    group = mqtt_share_group_prefix and f"radio{tag}"
    service = RadioService(url, address, policy=POLICY, root=root, share_group=group,
                           client_id=f"radio-test-{tag}", tick_s=0.1, session_expiry_s=0)  # fmt: skip
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    assert service.subscribed.wait(15), "radio service did not subscribe"
    with psycopg.connect(url) as conn:
        clusters = conn.execute("SELECT id, unit_id FROM devices WHERE kind = 'radio' ORDER BY id").fetchall()
    assert len(clusters) == 65
    fleet = RadioFleet(clusters, address, root=root, faults=FAULTS)
    fleet.start()
    assert fleet.wait_connected(30) == []
    world = World(url, root, service, fleet, tmp_path_factory.mktemp("media"))
    wait_for(lambda: world.scalar("SELECT count(*) FROM radio_cluster_state WHERE online") == 63, 30,
             "63 clusters online")  # fmt: skip
    wait_for(lambda: world.scalar("SELECT count(*) FROM radio_cluster_state WHERE NOT online") == 2, 30,
             "the 2 offline clusters' Last Will")  # fmt: skip
    try:
        yield world
    finally:
        fleet.stop()
        service.stopping.set()
        runner.join(5)
        service.stop()


def test_urgent_broadcast_to_three_communes_reaches_every_online_cluster_and_reports_the_rest(world: World) -> None:
    audio_id = world.audio(2.0)
    broadcast_id = world.broadcast(audio_id, unit_ids=TARGETS)
    report = world.finished(broadcast_id)
    by_cluster = {c["cluster_id"]: c for c in report["clusters"]}
    assert set(by_cluster) == {f"radio-{u}-{n}" for u in TARGETS for n in range(1, 6)}

    healthy = set(by_cluster) - set(FAULTS)
    assert {c: by_cluster[c]["outcome"] for c in healthy} == dict.fromkeys(healthy, "full")
    for c in healthy:
        row = by_cluster[c]
        assert row["acked_at"] and row["started_at"] and row["finished_at"] and row["reason"] is None
        assert row["started_at"] <= row["finished_at"]
    # Every online cluster of the three communes got the command; no cluster elsewhere did.
    for cid, cluster in world.fleet.clusters.items():
        targeted = cluster.unit in TARGETS and not cluster.faults.offline
        assert bool(cluster.faults.received) == targeted, cid

    assert (by_cluster["radio-tra-son-5"]["outcome"], by_cluster["radio-tra-son-5"]["reason"]) == ("none", "offline")
    assert (by_cluster["radio-tra-kot-5"]["outcome"], by_cluster["radio-tra-kot-5"]["reason"]) == ("none", "offline")
    rejected = by_cluster["radio-tra-nu-4"]
    assert (rejected["outcome"], rejected["reason"]) == ("none", "rejected: amplifier fault")
    assert rejected["acked_at"] is not None and rejected["started_at"] is None
    silent = by_cluster["radio-tra-nu-2"]
    assert (silent["outcome"], silent["reason"]) == ("none", "no answer after 2 sends, 1 s each")

    halfway = by_cluster["radio-tra-kot-2"]
    assert halfway["outcome"] == "partial"
    assert 0.8 <= halfway["position_s"] <= 1.2  # stopped half-way through 2 s
    assert "interrupted (fault: amplifier stopped) at 1.0 s" in halfway["reason"]
    assert report["summary"] == {"full": 10, "partial": 1, "none": 4}
    assert report["status"] == "finished"

    with psycopg.connect(world.url) as conn:
        alerts = dict(
            conn.execute(
                "SELECT evidence->>'cluster_id', kind FROM alerts WHERE dedup_key LIKE %s", (f"radio:{broadcast_id}:%",)
            ).fetchall()
        )
        severities = {r[0] for r in conn.execute("SELECT severity FROM alerts WHERE dedup_key LIKE %s",
                                                 (f"radio:{broadcast_id}:%",))}  # fmt: skip
    assert alerts == {
        "radio-tra-son-5": "radio.playback_none",
        "radio-tra-kot-5": "radio.playback_none",
        "radio-tra-nu-4": "radio.playback_none",
        "radio-tra-nu-2": "radio.playback_none",
        "radio-tra-kot-2": "radio.playback_partial",
    }
    assert severities == {"severe"}


def test_commands_are_sent_again_with_the_same_correlation_id_then_time_out(world: World) -> None:
    audio_id = world.audio(0.5)
    broadcast_id = world.broadcast(audio_id, cluster_ids=["radio-tra-nu-2", "radio-tra-giang-1"])
    world.finished(broadcast_id)
    with psycopg.connect(world.url) as conn:
        state, attempts, reason, cid = conn.execute(
            "SELECT state, attempts, reason, correlation_id FROM radio_commands "
            "WHERE broadcast_id = %s AND device_id = 'radio-tra-nu-2'",
            (broadcast_id,),
        ).fetchone()  # type: ignore[misc]
        answered = conn.execute(
            "SELECT state, attempts FROM radio_commands WHERE broadcast_id = %s AND device_id = 'radio-tra-giang-1'",
            (broadcast_id,),
        ).fetchone()
    assert (state, attempts) == ("timeout", 2)
    assert reason == "no answer after 2 sends, 1 s each"
    # The device saw the very same command twice (a re-send, not a new command), and nothing more.
    assert world.fleet["radio-tra-nu-2"].faults.received.count(cid) == 2
    assert answered == ("accepted", 1)


def test_a_cluster_that_loses_power_half_way_is_partial_with_its_position(world: World) -> None:
    cluster = world.fleet["radio-tra-giac-3"]
    cluster.faults.lose_power_at = 0.5
    cluster.faults.power_off_s = 1.0
    try:
        audio_id = world.audio(2.0)
        broadcast_id = world.broadcast(audio_id, cluster_ids=["radio-tra-giac-3"])
        report = world.finished(broadcast_id)
    finally:
        cluster.faults.lose_power_at = None
    [row] = report["clusters"]
    assert row["outcome"] == "partial"
    assert 0.8 <= row["position_s"] <= 1.2
    assert "power_lost" in row["reason"]
    # The interruption was reported after power (and the link) came back.
    assert world.scalar("SELECT buffered FROM radio_plays WHERE broadcast_id = %s AND event = 'playback.interrupted'",
                        broadcast_id) is True  # fmt: skip


@pytest.fixture()
def api(world: World, mqtt_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = app_settings(world.url, mqtt_url, var_dir=tmp_path, mqtt_topic_root=world.root)
    with TestClient(create_app(settings)) as client:
        app = client.app
        app.state.radio_policy = POLICY  # type: ignore[attr-defined]
        yield client, {"Authorization": f"Bearer {token(client, world.url, 'operator')}"}


def test_a_rejected_command_shows_the_devices_reason_over_http(world: World, api: tuple[TestClient, dict]) -> None:
    client, headers = api
    sent = client.post("/api/radio/clusters/radio-tra-nu-4/commands", headers=headers,
                       json={"command": "volume", "volume": 40})  # fmt: skip
    assert sent.status_code == 202, sent.text
    cid = sent.json()["correlation_id"]

    def answered(correlation_id: str) -> dict | None:
        body = client.get(f"/api/radio/commands/{correlation_id}", headers=headers).json()
        return body if body["state"] not in ("pending", "sent") else None

    rejected = wait_for(lambda: answered(cid), 15, "the rejection")
    assert (rejected["state"], rejected["reason"], rejected["attempts"]) == ("rejected", "amplifier fault", 1)  # type: ignore[index]
    ok = client.post("/api/radio/clusters/radio-tra-giang-2/commands", headers=headers,
                     json={"command": "volume", "volume": 40}).json()  # fmt: skip
    assert wait_for(lambda: answered(ok["correlation_id"]), 15, "the ack")["state"] == "accepted"  # type: ignore[index]
    wait_for(lambda: {c["id"]: c["volume"] for c in client.get("/api/radio/clusters", params={"unit_id": "tra-giang"},
                                                               headers=headers).json()}["radio-tra-giang-2"] == 40,
             15, "the new volume in the cluster's status")  # fmt: skip
    missing = client.post("/api/radio/clusters/radio-nowhere/commands", headers=headers, json={"command": "reboot"})
    assert missing.status_code == 404


def test_broadcast_over_http_and_its_proof_and_the_wall_status(world: World, api: tuple[TestClient, dict]) -> None:
    client, headers = api
    listener = psycopg.connect(world.url, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    upload = client.post("/api/radio/audio", headers=headers, files={"file": ("tin.ogg", wav(1.0, fmt="OGG"),
                                                                               "audio/ogg")})  # fmt: skip
    assert upload.status_code == 201, upload.text
    created = client.post("/api/radio/broadcasts", headers=headers, json={
        "title": "Thông báo khẩn", "text": None, "audio_id": upload.json()["id"], "unit_ids": ["tra-giang"],
        "cluster_ids": [], "polygon": None, "repeat": 2, "urgent": True})  # fmt: skip
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    playing = wait_for(
        lambda: [
            r
            for r in client.get("/api/radio/status", headers=headers).json()
            if r["unit_id"] == "tra-giang" and r["playing"] > 0
        ],
        15,
        "the wall to show it playing",
    )
    assert playing[0]["active_broadcast_id"] == broadcast_id  # type: ignore[index]
    proof = wait_for(lambda: (p := client.get(f"/api/radio/broadcasts/{broadcast_id}/proof", headers=headers).json())
                     ["status"] == "finished" and p, 30, "the proof to be final")  # fmt: skip
    assert proof["summary"] == {"full": 5, "partial": 0, "none": 0}  # type: ignore[index]
    assert all(c["position_s"] == pytest.approx(2.0, abs=0.01) for c in proof["clusters"])  # type: ignore[index]
    # The same story went out live on the websocket topic "radio", per cluster and at the end.
    live = [decode(n.payload) for n in listener.notifies(timeout=2.0)]
    listener.close()
    mine = [e for e in live if e.topic == "radio" and e.data.get("broadcast_id") == broadcast_id]
    kinds = [e.type for e in mine]
    assert kinds[0] == "broadcast.started" and kinds[-1] == "broadcast.finished"
    assert mine[-1].data["summary"] == {"full": 5, "partial": 0, "none": 0}
    progress = {e.data["cluster_id"] for e in mine if e.type == "broadcast.progress" and e.data["state"] == "finished"}
    assert progress == {f"radio-tra-giang-{n}" for n in range(1, 6)}
    assert {e.unit_id for e in mine if e.type == "broadcast.progress"} == {"tra-giang"}
    playing = {e.data["cluster_id"] for e in live if e.type == "radio.status" and e.data["playing"]}
    assert playing >= {f"radio-tra-giang-{n}" for n in range(1, 6)}  # the wall's panel lit up live
    officer = {"Authorization": f"Bearer {token(client, world.url, 'commune_officer', 'tra-kot')}"}
    assert client.get(f"/api/radio/broadcasts/{broadcast_id}/proof", headers=officer).status_code == 404


def test_reboot_is_acknowledged_then_the_cluster_drops_off_and_comes_back(
    world: World, api: tuple[TestClient, dict]
) -> None:
    client, headers = api
    seen: list[bool] = []

    def online() -> bool:
        state = world.scalar("SELECT online FROM radio_cluster_state WHERE device_id = 'radio-tra-doc-4'")
        if not seen or seen[-1] != state:
            seen.append(bool(state))
        return bool(state)

    sent = client.post("/api/radio/clusters/radio-tra-doc-4/commands", headers=headers, json={"command": "reboot"})
    assert sent.status_code == 202, sent.text
    cid = sent.json()["correlation_id"]
    wait_for(lambda: client.get(f"/api/radio/commands/{cid}", headers=headers).json()["state"] == "accepted", 15,
             "the reboot's ack")  # fmt: skip
    wait_for(lambda: not online(), 15, "its Last Will while it restarts")
    wait_for(online, 15, "it to come back online")
    assert seen[-2:] == [False, True]
