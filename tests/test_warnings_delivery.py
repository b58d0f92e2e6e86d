"""Failed deliveries (issue #17): a webhook that keeps failing is retried with back-off, then fails
and raises an alarm on the wall; a phone whose subscription is gone (HTTP 410) is dropped; e-mail with
no SMTP server fails with that reason; a radio command carries the CAP expiry; a warning body with an
open polygon is refused naming the field."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from staff import app_settings, token

from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.settings import Settings
from ioc.warnings import ledger, store
from ioc.warnings.config import WarningsConfig
from ioc.warnings.dispatch import DispatchContext, dispatch_one
from ioc.warnings.model import Content

CONFIG = Path(__file__).resolve().parent.parent / "config"
# A valid P-256 public key (RFC 8291 p256dh) of a phone that has since unsubscribed.
PHONE_KEY = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"


class Failing(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).calls += 1
        self.send_response(410 if self.path.startswith("/push") else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str]) -> Iterator[tuple[str, str]]:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield url, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_failed_deliveries_retry_then_fail_with_an_alarm_and_gone_phones_are_dropped(
        world: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    url, base = world
    monkeypatch.setenv("IOC_TEST_FAILING_SECRET", "s" * 32)
    config = WarningsConfig.model_validate({
        "second_person": "never",
        "categories": {"flood": {"label": "Lũ", "channels": ["radio", "push", "email", "webhook"]}},
        "email": {"district": ["pctt@huyen.example.vn"]},
        "webhooks": [{"id": "partner", "url": f"{base}/hook", "secret_env": "IOC_TEST_FAILING_SECRET"}],
        "retry_delays_s": [0, 0],
    })  # fmt: skip
    issuer = store.Issuer("ioc@huyen.example.vn", "IOC", config)
    boundary = json.loads((CONFIG / "district-units.geojson").read_text(encoding="utf-8"))["features"]
    ring = next([[lat, lon] for lon, lat in f["geometry"]["coordinates"][0]] for f in boundary
                if f["properties"]["unit_id"] == "tra-giang")  # fmt: skip
    expires = datetime.now(UTC) + timedelta(hours=6)
    content = Content.model_validate({"event": "Lũ", "headline": "Lũ ở Trà Giang", "expires": expires.isoformat(),
                                      "areas": [{"description": "Trà Giang", "polygons": [ring]}]})  # fmt: skip
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO push_subscriptions (actor, unit_ids, endpoint, p256dh, auth) VALUES "
                     "('cb', ARRAY['tra-giang'], %s, %s, %s)",
                     (f"{base}/push/1", PHONE_KEY, "tBHItJI5svbpez7KI4CCXg"))  # fmt: skip
        wid = store.create(conn, category="flood", cap_status="Actual", scope="Public", content=content,
                           alert_id=None, by="op", now=now, config=config)  # fmt: skip
        issued = store.issue(conn, wid, by="op", now=now, issuer=issuer)
        assert issued["state"] == "issued" and issued["unit_ids"] == ["tra-giang"]
        conn.commit()
        ctx = DispatchContext(config, tmp_path, None, "ioc@huyen.vn", "mailto:ioc@huyen.vn")
        for _ in range(20):
            with conn.transaction():
                if not dispatch_one(conn, ctx, datetime.now(UTC)):
                    break
        found = {(d["channel"], d["target"]): d for d in ledger.deliveries(conn, wid)}
        hook = found[("webhook", "partner")]
        assert (hook["state"], hook["attempts"], hook["reason"]) == ("failed", 3, "HTTP 500")
        states = [e["state"] for e in ledger.entries(conn, wid) if e["channel"] == "webhook"]
        assert states == ["queued", "retrying", "retrying", "failed"]
        mail = found[("email", "pctt@huyen.example.vn")]
        assert mail["state"] == "failed" and "no SMTP server configured" in mail["reason"]
        push = next(d for (ch, _), d in found.items() if ch == "push")
        assert push["state"] == "failed" and "gone" in push["reason"]
        assert conn.execute("SELECT count(*) FROM push_subscriptions").fetchone() == (0,)
        alarms = conn.execute("SELECT evidence->>'channel' FROM alerts WHERE kind = 'warning.delivery_failed' "
                              "AND (evidence->>'warning_id')::bigint = %s", (wid,)).fetchall()  # fmt: skip
        assert sorted(a[0] for a in alarms) == ["email", "push", "webhook"]
        # The radio will play it with commands that expire with the warning.
        from ioc.radio.broadcasts import RadioPolicy
        from ioc.radio.cap import CapPolicy, process_cap

        conn.execute("INSERT INTO radio_cluster_state (device_id, online) SELECT id, true FROM devices "
                     "WHERE kind = 'radio' AND unit_id = 'tra-giang' ON CONFLICT DO NOTHING")  # fmt: skip
        from radio_support import wav

        from ioc.radio import content as radio_content

        audio = radio_content.store_audio(conn, tmp_path, wav(1.0), title="x", created_by="t", max_bytes=10**7,
                                          max_duration_s=60).id  # fmt: skip
        conn.execute("UPDATE warnings SET content = jsonb_set(content, '{audio_id}', to_jsonb(%s::bigint)) "
                     "WHERE id = %s", (audio, wid))  # fmt: skip
        process_cap(conn, now=datetime.now(UTC), cap=CapPolicy(mode="start", categories=frozenset({"flood"}),
                                                               media_dir=tmp_path), policy=RadioPolicy())  # fmt: skip
        payloads = [r[0] for r in conn.execute(
            "SELECT c.payload FROM radio_commands c JOIN radio_broadcasts b ON b.id = c.broadcast_id "
            "WHERE b.cap_identifier = %s", (f"ioc-w{wid}-1",))]  # fmt: skip
        assert len(payloads) == 5
        assert {datetime.fromisoformat(p["expires_at"]) for p in payloads} == {expires}
        conn.rollback()


def test_a_warning_with_an_open_polygon_is_refused_naming_the_field(world: tuple[str, str], mqtt_url: str,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    url, _ = world
    with TestClient(create_app(app_settings(url, mqtt_url, var_dir=tmp_path))) as client:
        headers = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
        open_ring = [[15.4, 108.0], [15.4, 108.1], [15.5, 108.1], [15.5, 108.05]]
        body = {"category": "flood", "content": {"event": "Lũ", "headline": "x",
                                                 "areas": [{"description": "x", "polygons": [open_ring]}]}}  # fmt: skip
        refused = client.post("/api/warnings", headers=headers, json=body)
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "polygons" in refused.text and "closed ring" in refused.text


def test_ioc_warnings_check_accepts_the_sample_and_names_what_is_wrong(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ioc.cli.main import app

    runner = CliRunner()
    ok = runner.invoke(app, ["warnings", "check", str(CONFIG / "warnings.yaml")])
    assert ok.exit_code == 0 and "loudspeakers: flood" in ok.output, ok.output
    bad = tmp_path / "warnings.yaml"
    bad.write_text("email:\n  units:\n    nowhere: [a@b.example]\ncategories:\n  flood: {label: Lũ, channels: [fax]}\n")
    refused = runner.invoke(app, ["warnings", "check", str(bad)])
    assert refused.exit_code == 1 and "fax" in refused.output
    bad.write_text("email:\n  units:\n    nowhere: [a@b.example]\n")
    refused = runner.invoke(app, ["warnings", "check", str(bad)])
    assert refused.exit_code == 1 and "email.units.nowhere: no such unit" in refused.output
