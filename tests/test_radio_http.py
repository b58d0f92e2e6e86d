"""The radio over HTTP: recordings checked by decoding, broadcasts with roles and a second
confirmation, the wall's status per commune, commune officers confined to their commune."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
import soundfile
from fastapi.testclient import TestClient
from staff import app_settings, token

from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app
from ioc.radio import content
from ioc.reports.media_pool import media_pool
from ioc.settings import Settings

CONFIG = Path(__file__).resolve().parent.parent / "config"


def audio(seconds: float, fmt: str = "WAV", subtype: str | None = None, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seeded(database_factory: Callable[..., str]) -> str:
    url = database_factory()
    load_district_into(url, Settings(_env_file=None, district_config=CONFIG / "district.yaml"), {})  # type: ignore[call-arg]
    return url


@pytest.fixture(scope="module")
def client(seeded: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = app_settings(seeded, mqtt_url, var_dir=tmp_path_factory.mktemp("var"), radio_max_audio_s=5.0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def bearer(client: TestClient, url: str, role: str = "operator", unit: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(client, url, role, unit)}"}


def upload(client: TestClient, headers: dict[str, str], data: bytes, name: str = "ban-tin.wav") -> object:
    return client.post("/api/radio/audio", headers=headers, files={"file": (name, data, "audio/wav")})


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", None), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")], ids=["wav", "ogg", "mp3"]
)
def test_wav_ogg_and_mp3_recordings_are_accepted_with_duration_rate_and_checksum(
    client: TestClient, seeded: str, fmt: str, subtype: str | None
) -> None:
    data = audio(1.0 + secrets.randbelow(100) / 1000, fmt, subtype)
    response = upload(client, bearer(client, seeded), data, f"x.{fmt.lower()}")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sample_rate"] == 16_000 and 0.95 <= body["duration_s"] <= 1.2
    assert len(body["sha256"]) == 64 and body["format"] == fmt
    with psycopg.connect(seeded) as conn:
        key = conn.execute("SELECT storage_key FROM radio_audio WHERE id = %s", (body["id"],)).fetchone()[0]  # type: ignore[index]
    assert key == f"radio/{body['sha256']}.{fmt.lower()}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"\x89PNG\r\n\x1a\n" + bytes(2000), "not a readable WAV, MP3 or OGG recording"),  # wrong type
        (lambda: audio(2.0, "FLAC"), "unsupported audio type FLAC"),  # real audio, not an accepted type
        (lambda: audio(2.0)[:30_000], "corrupt or truncated"),  # cut off in the middle
        (lambda: b"OggS" + secrets.token_bytes(3000), "not a readable WAV, MP3 or OGG recording"),  # corrupt
        (lambda: audio(6.0), "too long: 6.0 s, the limit is 5 s"),  # past IOC_RADIO_MAX_AUDIO_S
        (lambda: b"", "empty file"),
    ],
    ids=["png", "flac", "truncated-wav", "corrupt-ogg", "too-long", "empty"],
)
def test_invalid_audio_is_refused_with_its_reason_and_nothing_is_stored(
    client: TestClient, seeded: str, make: Callable[[], bytes], reason: str
) -> None:
    with psycopg.connect(seeded) as conn:
        before = conn.execute("SELECT count(*) FROM radio_audio").fetchone()[0]  # type: ignore[index]
    response = upload(client, bearer(client, seeded), make())
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert response.json()["detail"].startswith("tệp âm thanh không hợp lệ")
    with psycopg.connect(seeded) as conn:
        assert conn.execute("SELECT count(*) FROM radio_audio").fetchone()[0] == before  # type: ignore[index]


def test_recordings_are_decoded_in_the_media_pool_not_in_the_api_process(client: TestClient, seeded: str) -> None:
    """The decoding runs in a worker process of the app's bounded media pool (the same pool as
    photos, videos and speech), whether it accepts the recording or refuses it; the upload spooled
    to disk for it is gone afterwards (moved into place, or deleted)."""
    pool = media_pool(client.app)
    headers = bearer(client, seeded)
    before = pool.jobs["inspect_audio_file"]
    accepted = upload(client, headers, audio(1.5 + secrets.randbelow(100) / 1000))
    assert accepted.status_code == 201, accepted.text
    assert pool.jobs["inspect_audio_file"] == before + 1
    worker = pool.ran_in["inspect_audio_file"]
    ours = {child.pid for child in psutil.Process().children(recursive=True)}
    assert worker != os.getpid()
    assert worker in ours or not psutil.pid_exists(worker)  # a worker is recycled after 25 jobs
    refused = upload(client, headers, audio(2.0)[:30_000])
    assert refused.status_code == 422 and "corrupt or truncated" in refused.json()["detail"]
    assert refused.json()["errors"][0]["pointer"] == "#/file"
    assert pool.jobs["inspect_audio_file"] == before + 2
    spool = Path(client.app.state.ioc.settings.var_dir) / "media" / "tmp"
    assert not list(spool.glob("*.upload"))


def test_commune_officers_and_leaders_may_not_upload_or_broadcast(client: TestClient, seeded: str) -> None:
    officer = bearer(client, seeded, "commune_officer", "tra-kot")
    leader = bearer(client, seeded, "leader")
    assert upload(client, officer, audio(1.0)).status_code == 403
    body = {"title": "Thử", "audio_id": 1, "unit_ids": ["tra-kot"]}
    for headers in (officer, leader):
        response = client.post("/api/radio/broadcasts", headers=headers, json=body)
        assert response.status_code == 403 and "may not do this" in response.json()["detail"]


def test_broadcast_targets_are_checked(client: TestClient, seeded: str) -> None:
    headers = bearer(client, seeded)
    audio_id = upload(client, headers, audio(1.3)).json()["id"]
    cases = [
        ({"unit_ids": ["tra-xyz"]}, "unknown unit(s): tra-xyz"),
        ({"cluster_ids": ["radio-nowhere-1"]}, "unknown radio cluster(s): radio-nowhere-1"),
        ({"polygon": {"type": "Polygon", "coordinates": [[[100, 1], [100.1, 1], [100.1, 1.1], [100, 1]]]}},
         "the targets reach no loudspeaker cluster"),
        ({}, "the targets reach no loudspeaker cluster"),
    ]  # fmt: skip
    for targets, reason in cases:
        response = client.post("/api/radio/broadcasts", headers=headers,
                               json={"title": "Thử", "audio_id": audio_id, **targets})  # fmt: skip
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"]
    no_content = client.post("/api/radio/broadcasts", headers=headers, json={"title": "Thử", "unit_ids": ["tra-kot"]})
    assert no_content.status_code == 422 and "audio_id" in no_content.json()["detail"]


def test_a_polygon_targets_the_clusters_inside_it(client: TestClient, seeded: str) -> None:
    headers = bearer(client, seeded)
    audio_id = upload(client, headers, audio(1.4)).json()["id"]
    with psycopg.connect(seeded) as conn:
        lat, lon = conn.execute("SELECT lat, lon FROM devices WHERE id = 'radio-tra-doc-3'").fetchone()  # type: ignore[misc]
    d = 0.001
    square = {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                                  [lon - d, lat + d], [lon - d, lat - d]]]}  # fmt: skip
    response = client.post("/api/radio/broadcasts", headers=headers,
                           json={"title": "Sạt lở", "audio_id": audio_id, "polygon": square})  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["targets"]["clusters"] == ["radio-tra-doc-3"]
    assert response.json()["status"] == "playing"
    proof = client.get(f"/api/radio/broadcasts/{response.json()['id']}/proof", headers=headers).json()
    assert [(c["cluster_id"], c["outcome"]) for c in proof["clusters"]] == [("radio-tra-doc-3", "none")]
    assert proof["summary"] == {"full": 0, "partial": 0, "none": 1}


def test_second_confirmation_comes_from_another_person_when_the_policy_asks(client: TestClient, seeded: str) -> None:
    from ioc.radio.broadcasts import RadioPolicy

    app = client.app
    app.state.radio_policy = RadioPolicy(second_confirmation="urgent")  # type: ignore[attr-defined]
    try:
        requester = bearer(client, seeded)
        audio_id = upload(client, requester, audio(1.5)).json()["id"]
        body = {"title": "Lũ", "audio_id": audio_id, "unit_ids": ["tra-ka"], "repeat": 2}
        created = client.post("/api/radio/broadcasts", headers=requester, json=body)
        assert created.status_code == 201 and created.json()["status"] == "awaiting_confirmation"
        broadcast_id = created.json()["id"]
        with psycopg.connect(seeded) as conn:
            assert (
                conn.execute("SELECT count(*) FROM radio_commands WHERE broadcast_id = %s", (broadcast_id,)).fetchone()[
                    0
                ]
                == 0
            )  # nothing sent yet  # type: ignore[index]
        own = client.post(f"/api/radio/broadcasts/{broadcast_id}/confirm", headers=requester)
        assert own.status_code == 403 and "another person" in own.json()["detail"]
        officer = bearer(client, seeded, "commune_officer", "tra-ka")
        assert client.post(f"/api/radio/broadcasts/{broadcast_id}/confirm", headers=officer).status_code == 403
        leader = bearer(client, seeded, "leader")
        confirmed = client.post(f"/api/radio/broadcasts/{broadcast_id}/confirm", headers=leader)
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["status"] == "playing" and confirmed.json()["confirmed_by"].startswith("leader-")
        with psycopg.connect(seeded) as conn:
            assert (
                conn.execute(
                    "SELECT count(*) FROM radio_commands WHERE broadcast_id = %s AND command = 'play'", (broadcast_id,)
                ).fetchone()[0]
                == 5
            )  # type: ignore[index]
        again = client.post(f"/api/radio/broadcasts/{broadcast_id}/confirm", headers=leader)
        assert again.status_code == 409
        stopped = client.post(f"/api/radio/broadcasts/{broadcast_id}/stop", headers=requester)
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        proof = client.get(f"/api/radio/broadcasts/{broadcast_id}/proof", headers=requester).json()
        assert {c["reason"] for c in proof["clusters"]} == {"stopped before it played"}
    finally:
        del app.state.radio_policy  # type: ignore[attr-defined]


def test_wall_status_per_commune_and_officers_see_only_their_commune(client: TestClient, seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        conn.execute(
            "INSERT INTO radio_cluster_state (device_id, online, playing, volume, power, battery_pct, last_seen) "
            "VALUES ('radio-tra-giap-1', true, true, 80, 'battery', 64.5, now()), "
            "('radio-tra-giap-2', true, false, 70, 'mains', NULL, now()) "
            "ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, playing = EXCLUDED.playing"
        )
    operator = bearer(client, seeded)
    rows = {r["unit_id"]: r for r in client.get("/api/radio/status", headers=operator).json()}
    assert len(rows) == 13 and all(r["clusters_total"] == 5 for r in rows.values())
    giap = rows["tra-giap"]
    assert (giap["online"], giap["offline"], giap["playing"]) == (2, 3, 1)
    assert set(giap) == {"unit_id", "unit_name", "clusters_total", "online", "offline", "playing",
                         "active_broadcast_id"}  # fmt: skip
    clusters = client.get("/api/radio/clusters", params={"unit_id": "tra-giap"}, headers=operator).json()
    assert [c["id"] for c in clusters] == [f"radio-tra-giap-{n}" for n in range(1, 6)]
    first = clusters[0]
    assert (first["online"], first["playing"], first["volume"], first["power"], first["battery_pct"]) == (
        True, True, 80, "battery", 64.5)  # fmt: skip
    officer = bearer(client, seeded, "commune_officer", "tra-kot")
    mine = client.get("/api/radio/status", headers=officer).json()
    assert [r["unit_id"] for r in mine] == ["tra-kot"]
    assert {c["unit_id"] for c in client.get("/api/radio/clusters", headers=officer).json()} == {"tra-kot"}
    assert client.get("/api/radio/status").status_code == 401


def test_text_to_speech_in_vietnamese_when_espeak_ng_is_installed(client: TestClient, seeded: str) -> None:
    headers = bearer(client, seeded)
    response = client.post("/api/radio/tts", headers=headers, json={"text": "Cảnh báo lũ quét trên sông Trường."})
    spoken = client.post("/api/radio/broadcasts", headers=headers,
                         json={"title": "Đọc", "text": "Sơ tán ngay.", "unit_ids": ["tra-kot"]})  # fmt: skip
    if not content.tts_available():
        assert response.status_code == 422 and "espeak-ng" in response.json()["detail"]
        assert spoken.status_code == 422 and "upload a recording instead" in spoken.json()["detail"]
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng): text-to-speech answers 422")
    assert response.status_code == 201, response.text
    assert response.json()["duration_s"] > 1.0
    assert spoken.status_code == 201 and spoken.json()["text"] == "Sơ tán ngay."
