"""The live stream: events notified in a committed transaction reach websocket clients; a slow
client is told to resync instead of slowing the others; rolled-back events never show."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from fastapi.testclient import TestClient
from staff import app_settings, token

from ioc.http.app import create_app
from ioc.hub.events import LiveEvent, TooLarge, encode, notify
from ioc.hub.hub import Hub


def _wait_listening(client: TestClient) -> None:
    deadline = time.monotonic() + 10
    while not client.app.state.hub_ready.is_set():
        assert time.monotonic() < deadline, "hub listener did not start"
        time.sleep(0.05)


def test_committed_events_reach_the_websocket_and_rolled_back_do_not(database_url: str, mqtt_url: str) -> None:
    app = create_app(app_settings(database_url, mqtt_url))
    with (
        TestClient(app) as client,
        client.websocket_connect(f"/ws?topics=alert,presence&access_token={token(client, database_url)}") as ws,
    ):
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["topics"] == ["alert", "presence"]
        while ws.receive_json()["type"] != "snapshot_end":
            pass
        _wait_listening(client)
        with psycopg.connect(database_url) as conn:
            notify(conn, LiveEvent(topic="alert", type="alert.created", unit_id="tra-kot", data={"id": 1}))
            conn.rollback()  # never committed: never delivered
            notify(conn, LiveEvent(topic="kpi", type="kpi.updated"))  # not subscribed
            notify(conn, LiveEvent(topic="presence", type="device.offline", unit_id="tra-kot", data={"id": "r1"}))
            conn.commit()
        message = ws.receive_json()
        assert message["type"] == "event"
        event = message["event"]
        assert (event["topic"], event["type"], event["data"]) == ("presence", "device.offline", {"id": "r1"})
        assert "seq" not in message  # only alert events carry the replayable sequence number


def test_unknown_topic_is_refused_with_a_reason(database_url: str, mqtt_url: str) -> None:
    app = create_app(app_settings(database_url, mqtt_url))
    with (
        TestClient(app) as client,
        client.websocket_connect(f"/ws?topics=alerts&access_token={token(client, database_url)}") as ws,
    ):
        assert ws.receive_json() == {"type": "error", "reason": "unknown topics: alerts"}


def test_slow_client_gets_resync_and_fast_client_gets_everything() -> None:
    async def scenario() -> None:
        hub = Hub(queue_size=3)
        slow = hub.subscribe()
        fast = hub.subscribe(frozenset({"alert"}), allows_unit=lambda unit: unit == "tra-kot")
        received = []
        for i in range(5):
            hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id="tra-kot", data={"i": i}))
            received.extend(frame.event.data["i"] for frame in fast.take())
        hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id="tra-ka"))  # not fast's unit
        assert received == [0, 1, 2, 3, 4] and fast.take() == []
        items = slow.take()
        assert items[0] == {"type": "resync", "reason": "slow_consumer", "dropped": 4}
        assert [m.event.data.get("i") for m in items[1:]] == [4, None]

    asyncio.run(scenario())


def test_oversized_event_is_refused_before_it_reaches_postgres() -> None:
    with pytest.raises(TooLarge, match="NOTIFY limit"):
        encode(LiveEvent(topic="camera", type="x", data={"blob": "a" * 9000}))


def test_reconnect_with_since_replays_every_missed_alert_in_order_then_goes_live(
    database_url: str, mqtt_url: str
) -> None:
    from datetime import UTC, datetime

    from ioc.alerts.model import AlertDraft, Severity
    from ioc.alerts.store import raise_alerts

    unit = "xa-phat-lai"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO units (id, name, name_search, level) VALUES (%s, 'Phát lại', 'phat lai', 'commune')"
            " ON CONFLICT DO NOTHING",
            (unit,),
        )

    def raise_one(i: int) -> int:
        with psycopg.connect(database_url) as conn:
            draft = AlertDraft(kind="test.replay", severity=Severity.MINOR, title=f"Cảnh báo {i}",
                               at=datetime.now(UTC), unit_id=unit, dedup_key=f"replay-{i}")  # fmt: skip
            return raise_alerts(conn, [draft], now=datetime.now(UTC))[0].id

    app = create_app(app_settings(database_url, mqtt_url))
    with TestClient(app) as client:
        bearer = token(client, database_url)
        with client.websocket_connect(f"/ws?topics=alert&units={unit}&access_token={bearer}") as ws:
            last_seq = ws.receive_json()["last_seq"]
            while (frame := ws.receive_json())["type"] != "snapshot_end":
                pass
        missed = [raise_one(i) for i in range(100)]  # while disconnected
        with client.websocket_connect(f"/ws?topics=alert&units={unit}&since={last_seq}&access_token={bearer}") as ws:
            assert ws.receive_json()["type"] == "hello"
            replayed = []
            while (frame := ws.receive_json())["type"] != "replay_end":
                replayed.append((frame["seq"], frame["event"]["data"]["id"]))
            assert [alert_id for _, alert_id in replayed] == missed
            seqs = [seq for seq, _ in replayed]
            assert seqs == sorted(seqs) and seqs[0] > last_seq and frame["last_seq"] == seqs[-1]
            _wait_listening(client)
            live_id = raise_one(100)
            live = ws.receive_json()
            assert live["type"] == "event" and live["event"]["data"]["id"] == live_id and live["seq"] > seqs[-1]


def test_logging_out_ends_an_open_live_stream(database_url: str, mqtt_url: str, monkeypatch) -> None:
    from ioc.http.routes import live

    monkeypatch.setattr(live, "RECHECK_S", 0.1)
    monkeypatch.setattr(live, "PING_INTERVAL_S", 0.2)
    app = create_app(app_settings(database_url, mqtt_url))
    with TestClient(app) as client:
        bearer = token(client, database_url)
        with client.websocket_connect(f"/ws?topics=alert&access_token={bearer}") as ws:
            while ws.receive_json()["type"] != "snapshot_end":
                pass
            assert ws.receive_json()["type"] == "ping"  # still welcome
            out = client.post("/api/auth/logout", headers={"Authorization": f"Bearer {bearer}"}, json={})
            assert out.status_code in (200, 204), out.text
            while (frame := ws.receive_json())["type"] == "ping":
                pass
            assert frame["type"] == "error" and "log in again" in frame["reason"]


def test_a_communes_stream_gets_the_platforms_news_but_no_other_unitless_event() -> None:
    """A commune officer's console hears "database away" (a system event with no unit) like the wall,
    and still nothing of district-level alerts or other communes."""

    async def run() -> list[str]:
        hub = Hub()
        sub = hub.subscribe(frozenset(), lambda unit: unit is not None and unit in {"tra-kot"})
        hub.publish(LiveEvent(topic="system", type="database.unavailable"))
        hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id=None, data={"id": 1}))
        hub.publish(LiveEvent(topic="system", type="unit.note", unit_id="tra-son"))
        hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id="tra-kot", data={"id": 2}))
        return [frame.event.type for frame in sub.take()]

    assert asyncio.run(run()) == ["database.unavailable", "alert.created"]


def test_events_published_together_reach_each_client_in_one_write_and_a_stuck_client_stalls_no_one() -> None:
    """The hub writes each started client's backlog itself, in one pass after the events that arrived
    together: one message per client, not one per event. A client whose write cannot complete (its
    socket buffer is full) is waited for alone: the others still get every event, and it gets a
    ``resync`` naming the last seq it was sent once its backlog overflows."""

    async def scenario() -> tuple[list[str], list[str], list]:
        hub = Hub(queue_size=4)
        fast_writes: list[str] = []
        stuck_writes: list[str] = []
        unstick = asyncio.get_running_loop().create_future()

        async def fast_write(text: str) -> None:
            fast_writes.append(text)

        async def stuck_write(text: str) -> None:
            stuck_writes.append(text)
            await unstick  # as uvicorn's send waits while the transport is paused

        def render(items: list) -> str:
            return "|".join(str(item.seq) if hasattr(item, "seq") else item["type"] for item in items)

        fast, stuck = hub.subscribe(), hub.subscribe()
        failures: list = []
        fast.start(render, fast_write, lambda: failures.append("fast"))
        stuck.start(render, stuck_write, lambda: failures.append("stuck"))
        for seq in (1, 2, 3):  # one commit's events: published back to back, written once
            hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id="u", data={"seq": seq}))
        await asyncio.sleep(0)
        assert fast_writes == ["1|2|3"] and stuck_writes == ["1|2|3"]
        for seq in range(4, 10):  # the stuck client's write has not returned: its backlog overflows
            hub.publish(LiveEvent(topic="alert", type="alert.created", unit_id="u", data={"seq": seq}))
            await asyncio.sleep(0)
        assert fast_writes == ["1|2|3", "4", "5", "6", "7", "8", "9"]
        unstick.set_result(None)
        await asyncio.sleep(0.01)
        return stuck_writes, [stuck.dropped], failures

    stuck_writes, dropped, failures = asyncio.run(scenario())
    assert stuck_writes == ["1|2|3", "resync|9"] and dropped == [5] and failures == []


def test_a_resync_tells_the_client_where_to_reconnect_from(database_url: str, mqtt_url: str) -> None:
    """Through the real route: the resync message carries ``since``, the last seq the client was sent."""
    app = create_app(app_settings(database_url, mqtt_url))
    with TestClient(app) as client:
        bearer = token(client, database_url)
        with client.websocket_connect(f"/ws?topics=alert&access_token={bearer}") as ws:
            while (first := ws.receive_json())["type"] != "snapshot_end":
                pass
            hub: Hub = client.app.state.hub
            sub = next(iter(hub._subs))
            assert first["last_seq"] >= 0
            client.portal.call(hub._resync, sub)  # what an overflowing backlog does
            client.portal.call(sub.flush)
            message = ws.receive_json()
            assert message == {"type": "resync", "reason": "slow_consumer", "dropped": 1, "since": first["last_seq"]}
