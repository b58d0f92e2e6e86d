"""Media under hostile conditions, through the real app over HTTP (uvicorn, PostgreSQL):

* a refused citizen report carrying the same photo as a staff member's never removes the staff
  photo's file (reference counts), while a refused report's own files are all gone;
* the latest camera frame, replaced 100 times a second by rename, is always served whole;
* a submission retried with the same ``Idempotency-Key`` (even concurrently) creates one report.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from PIL import Image
from served import ServedApp
from staff import PASSWORD, district_app_settings

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.auth import passwords, repository
from ioc.http.app import create_app

CAMERA = "cam-tra-kot-school-01"


@pytest.fixture(scope="module")
def served(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    var = tmp_path_factory.mktemp("var")
    settings = district_app_settings(url, mqtt_url, var, public_submit_burst=1000, public_submit_per_min=6000)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        repository.create_user(conn, username="media-op", display_name="media-op", role="operator", unit_id=None,
                               password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
        [alert] = raise_alerts(conn, [AlertDraft(kind="test.media", severity=Severity.MINOR, title="Thử ảnh", at=now,
                                                 unit_id="tra-kot", dedup_key="media-1")], now=now)  # fmt: skip
    with ServedApp(create_app(settings)) as app, requests.Session() as session:
        login = session.post(f"{app.url}/api/auth/login", json={"username": "media-op", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        yield {"url": app.url, "db": url, "var": var, "auth": auth, "alert": alert.id, "session": session}


def _jpeg(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))
    for x in range(0, size[0], 16):  # some texture, so sizes differ between seeds
        image.putpixel((x, (x * seed) % size[1]), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _files(var: Path) -> set[str]:
    root = var / "media"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "live" not in p.parts}


def test_a_refused_report_never_removes_a_file_a_staff_photo_uses(served) -> None:
    s, url = served["session"], served["url"]
    photo = _jpeg(1)
    staff = s.post(f"{url}/api/alerts/{served['alert']}/photos", headers=served["auth"],
                   files={"photo": ("site.jpg", photo, "image/jpeg")})  # fmt: skip
    assert staff.status_code == 201, staff.text
    action = s.post(f"{url}/api/alerts/{served['alert']}/actions", headers=served["auth"],
                    json={"action": "comment", "note": "ảnh", "photo_ref": staff.json()["photo_ref"]})  # fmt: skip
    assert action.status_code == 200, action.text
    assert s.get(url + staff.json()["url"], headers=served["auth"]).status_code == 200
    before = _files(served["var"])
    refused = s.post(f"{url}/api/public/reports", data={"category": "moi-truong", "description": "Rác thải ven đường"},
                     files=[("photos", ("a.jpg", photo, "image/jpeg")),
                            ("photos", ("b.jpg", b"<?php echo 1; ?>", "image/jpeg"))])  # fmt: skip
    assert refused.status_code == 400 and "ảnh 2" in refused.json()["detail"]
    assert s.get(url + staff.json()["url"], headers=served["auth"]).status_code == 200, "the staff photo is gone"
    assert _files(served["var"]) == before

    own = s.post(f"{url}/api/public/reports", data={"category": "moi-truong", "description": "Rác thải ven đường"},
                 files=[("photos", ("c.jpg", _jpeg(2), "image/jpeg")),
                        ("photos", ("d.jpg", b"not an image", "image/jpeg"))])  # fmt: skip
    assert own.status_code == 400
    assert _files(served["var"]) == before, "a refused report left files behind"
    with psycopg.connect(served["db"]) as conn:
        refs = dict(conn.execute("SELECT storage_key, refs FROM media_refs").fetchall())
    assert refs[staff.json()["photo_ref"]] == 1


def test_a_report_and_a_staff_photo_share_one_file_until_both_let_go(served) -> None:
    s, url = served["session"], served["url"]
    photo = _jpeg(3)
    report = s.post(f"{url}/api/public/reports", data={"category": "moi-truong", "description": "Đèn đường hỏng"},
                    files=[("photos", ("a.jpg", photo, "image/jpeg"))])  # fmt: skip
    assert report.status_code == 201, report.text
    staff = s.post(f"{url}/api/alerts/{served['alert']}/photos", headers=served["auth"],
                   files={"photo": ("site.jpg", photo, "image/jpeg")})  # fmt: skip
    with psycopg.connect(served["db"]) as conn:
        refs = conn.execute("SELECT refs FROM media_refs WHERE storage_key = %s", (staff.json()["photo_ref"],))
        assert refs.fetchone() == (2,)


def test_the_latest_frame_is_served_whole_while_it_is_replaced_100_times_a_second(served) -> None:
    live = served["var"] / "media" / "live"
    live.mkdir(parents=True, exist_ok=True)
    versions = [_jpeg(seed, (1280, 720)) for seed in range(4, 8)]
    assert len({len(v) for v in versions}) > 1
    target = live / f"{CAMERA}.jpg"
    target.write_bytes(versions[0])
    stop = threading.Event()
    replaced = 0

    def replace_forever() -> None:  # as the detector does: write aside, then rename over
        nonlocal replaced
        while not stop.is_set():
            partial = live / f".{CAMERA}.jpg.part"
            partial.write_bytes(versions[replaced % len(versions)])
            partial.replace(target)
            replaced += 1
            time.sleep(0.01)

    writer = threading.Thread(target=replace_forever)
    writer.start()
    whole = set(versions)
    errors: list[str] = []

    def fetch(count: int) -> None:
        with requests.Session() as session:
            for _ in range(count):
                try:
                    response = session.get(f"{served['url']}/api/cameras/{CAMERA}/latest.jpg", headers=served["auth"])
                except requests.RequestException as exc:  # e.g. a body shorter than its Content-Length
                    errors.append(repr(exc)[:200])
                    continue
                if response.status_code != 200 or response.content not in whole:
                    errors.append(f"{response.status_code} {len(response.content)} bytes")

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(fetch, [2500] * 4))
    finally:
        stop.set()
        writer.join()
    elapsed = time.monotonic() - started
    assert errors == [], errors[:10]
    assert replaced / elapsed > 50, f"the file was replaced only {replaced} times in {elapsed:.1f} s"


def test_a_retried_submission_with_the_same_key_creates_one_report(served) -> None:
    s, url = served["session"], served["url"]
    key = "retry-" + datetime.now(UTC).strftime("%H%M%S%f")
    form = {"category": "moi-truong", "description": "Cây đổ chắn đường liên thôn"}

    def send(_: int) -> requests.Response:
        with requests.Session() as session:
            return session.post(f"{url}/api/public/reports", data=form, headers={"Idempotency-Key": key},
                                files=[("photos", ("a.jpg", _jpeg(9), "image/jpeg"))])  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert len({a.json()["tracking_code"] for a in answers}) == 1
    again = s.post(f"{url}/api/public/reports", data=form, headers={"Idempotency-Key": key})
    assert again.json()["tracking_code"] == answers[0].json()["tracking_code"]
    with psycopg.connect(served["db"]) as conn:
        assert conn.execute("SELECT count(*) FROM reports WHERE idempotency_key = %s", (key,)).fetchone() == (1,)
        same = conn.execute("SELECT count(*) FROM reports WHERE description = %s", (form["description"],))
        assert same.fetchone() == (1,)
