"""A hostile-input corpus against the real app (real PostgreSQL): every case is refused with a 4xx
problem+json whose ``detail`` (or an ``errors`` entry) names the reason: never a 5xx.

Cases are what an attacker or a broken client sends: NUL and control characters in the query,
path, JSON, form and multipart fields; bytes that are not UTF-8; dates near year 9999; numbers
beyond 64 bits; references to things that do not exist; oversized fields and bodies (declared or
streamed); XML with DTDs, entities and UTF-16; pixel bombs and files that are not what they say.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from staff import district_app_settings, token
from test_cap import _cap

from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.http.app import create_app


@pytest.fixture(scope="module")
def api(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    var = tmp_path_factory.mktemp("var")
    settings = district_app_settings(url, mqtt_url, var, public_submit_burst=1000, public_submit_per_min=6000)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        [alert] = raise_alerts(conn, [AlertDraft(kind="test.hostile", severity=Severity.MINOR, title="Thử", at=now,
                                                 unit_id="tra-kot", dedup_key="hostile-1")], now=now)  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {token(client, url, 'admin')}"}
        yield client, headers, alert.id


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGBA and carries almost nothing: a pixel bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = zlib.compress(b"\x00" * 1024)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


UTF16_DOCTYPE = (
    '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE alert [<!ENTITY x "boom">]>\n'
    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>'
).encode("utf-16")
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol3;</alert>'
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>'
)
LONG_HEADLINE = _cap("hostile-long").replace(b"<headline>", b"<headline>" + "Lũ quét ".encode() * 1200)


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


@dataclass
class Case:
    name: str
    method: str
    path: str
    reason: str  # a word the refusal must contain (detail or errors), case-insensitive
    auth: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)
    status: tuple[int, ...] = ()  # expected statuses; empty: any 4xx


def _report(**fields: Any) -> dict[str, Any]:
    data = {"category": "moi-truong", "description": "Rác thải đổ bừa bãi ven đường"}
    files = fields.pop("files", None)
    data.update(fields)
    return {"data": data, "files": files} if files else {"data": data}


JSON = {"Content-Type": "application/json"}
CASES = [
    Case("NUL in a search", "GET", "/api/alerts?q=a%00", "q"),
    Case("NUL in a search, anonymous", "GET", "/api/alerts?q=a%00", "q", auth=False),
    Case("bell character in a search", "GET", "/api/alerts?q=a%07b", "q"),
    Case("query value not UTF-8", "GET", "/api/alerts?q=%FF%FE", "UTF-8"),
    Case("query name with NUL", "GET", "/api/units?x%00=1", "control"),
    Case("NUL in the path", "GET", "/api/public/reports/PA-%00", "path"),
    Case("overlong UTF-8 in the path", "GET", "/api/public/reports/%C0%AF", "path"),
    Case("NUL in an Open311 id", "GET", "/open311/v2/requests/%00.json", "path"),
    Case("NUL in an Open311 date", "GET", "/open311/v2/requests.json?start_date=%00", "start_date"),
    Case("Open311 date nonsense", "GET", "/open311/v2/requests.json?start_date=9999-99-99", "start_date"),
    Case("NUL in the login name", "POST", "/api/auth/login", "#/username", auth=False,
         kwargs={"json": {"username": "admin\u0000", "password": "x" * 12}}),
    Case("lone surrogate in JSON", "POST", "/api/auth/login", "surrogate", auth=False,
         kwargs={"content": b'{"username": "a\\ud800", "password": "xxxxxxxxxxxx"}',
                 "headers": {"Content-Type": "application/json"}}),
    Case("NUL in a JSON member name", "POST", "/api/auth/login", "member name", auth=False,
         kwargs={"content": b'{"user\\u0000name": "a", "password": "xxxxxxxxxxxx"}',
                 "headers": {"Content-Type": "application/json"}}),
    Case("JSON body not UTF-8", "POST", "/api/auth/login", "UTF-8", auth=False,
         kwargs={"content": b'{"username": "\xff\xfe", "password": "x"}', "headers": JSON}),
    Case("JSON body 2 MB", "POST", "/api/auth/login", "limit", auth=False, status=(413,),
         kwargs={"content": b'{"username": "' + b"a" * 2_000_000 + b'"}', "headers": JSON}),
    Case("Open311 description with NUL", "POST", "/open311/v2/requests.json", "description", auth=False,
         kwargs={"data": {"service_code": "moi-truong", "description": "rác\x00", "lat": "15.4", "long": "108.0"}}),
    Case("report description with NUL", "POST", "/api/public/reports", "description", auth=False,
         kwargs=_report(description="Rác thải\x00 ven đường")),
    Case("report category with NUL", "POST", "/api/public/reports", "category", auth=False,
         kwargs=_report(category="moi\x00truong")),
    Case("report address with escape", "POST", "/api/public/reports", "address", auth=False,
         kwargs=_report(address="Thôn 1\x1b[31m")),
    Case("report with a pixel bomb", "POST", "/api/public/reports", "pixels", auth=False,
         kwargs=_report(files=[("photos", ("bomb.png", _png_header(6000, 6700), "image/png"))])),
    Case("report with a 50k x 50k PNG", "POST", "/api/public/reports", "pixels", auth=False,
         kwargs=_report(files=[("photos", ("huge.png", _png_header(50_000, 50_000), "image/png"))])),
    Case("report with a too-wide panorama", "POST", "/api/public/reports", "wide", auth=False,
         kwargs=_report(files=[("photos", ("wide.png", _png_header(13_000, 100), "image/png"))])),
    Case("report with PHP as a photo", "POST", "/api/public/reports", "JPEG", auth=False,
         kwargs=_report(files=[("photos", ("x.jpg", b"<?php system($_GET['c']); ?>", "image/jpeg"))])),
    Case("report with a fake MP4", "POST", "/api/public/reports", "video", auth=False,
         kwargs=_report(files=[("video", ("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000, "video/mp4"))])),
    Case("report declaring 200 MB", "POST", "/api/public/reports", "limit", auth=False, status=(413,),
         kwargs={"content": b"", "headers": {"Content-Length": str(200 * 1024 * 1024),
                                             "Content-Type": "multipart/form-data; boundary=x"}}),
    Case("report multipart without a boundary", "POST", "/api/public/reports", "boundary", auth=False, status=(400,),
         kwargs={"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}}),
    Case("report multipart cut off in a part", "POST", "/api/public/reports", "category", auth=False, status=(422,),
         kwargs={"content": b'--xx\r\nContent-Disposition: form-data; name="category"\r\n\r\nmoi-truong\r\n--x',
                 "headers": {"Content-Type": "multipart/form-data; boundary=xx"}}),
    Case("report multipart part without a name", "POST", "/api/public/reports", "name", auth=False, status=(400,),
         kwargs={"content": b"--xx\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xx--\r\n",
                 "headers": {"Content-Type": "multipart/form-data; boundary=xx"}}),
    Case("recording that is a PNG", "POST", "/api/radio/audio", "file",
         kwargs={"files": {"file": ("x.wav", b"\x89PNG\r\n\x1a\n" + bytes(500), "audio/wav")}}),
    Case("CAP streamed past its limit", "POST", "/api/cap", "limit", status=(413,),
         kwargs={"content": _chunks(2 * 1024 * 1024), "headers": {"Content-Type": "application/cap+xml"}}),
    Case("report bad idempotency key", "POST", "/api/public/reports", "Idempotency-Key", auth=False,
         kwargs={**_report(), "headers": {"Idempotency-Key": "short!"}}),
    Case("KPI period to year 9999", "GET", "/api/kpi/dossiers?from=2026-01-01&to=9999-12-31", "to"),
    Case("KPI period from year 1", "GET", "/api/kpi/dossiers?from=0001-01-01&to=2026-01-01", "from"),
    Case("KPI date not a date", "GET", "/api/kpi/dossiers?from=2026-02-30&to=2026-03-01", "from"),
    Case("sector period to year 9999", "GET", "/api/sectors/education?from=2026-01-01&to=9999-12-31", "to"),
    Case("alert id beyond 64 bits", "GET", "/api/alerts/99999999999999999999", "not"),
    Case("changes since beyond 64 bits", "GET", "/api/alerts/changes?since=99999999999999999999", "since"),
    Case("page limit absurd", "GET", "/api/alerts?limit=1000000000", "limit"),
    Case("assign to an unknown unit", "POST", "/api/alerts/{alert}/actions", "unit",
         kwargs={"json": {"action": "assign", "unit_id": "no-such-commune"}}),
    Case("action note with NUL", "POST", "/api/alerts/{alert}/actions", "#/note",
         kwargs={"json": {"action": "comment", "note": "a\u0000b"}}),
    Case("action on a missing alert", "POST", "/api/alerts/987654321/actions", "not",
         kwargs={"json": {"action": "comment", "note": "x"}}),
    Case("photo_ref traversal", "POST", "/api/alerts/{alert}/actions", "photo_ref",
         kwargs={"json": {"action": "comment", "note": "x", "photo_ref": "../../etc/passwd"}}),
    Case("broadcast to an unknown unit", "POST", "/api/radio/broadcasts", "unit",
         kwargs={"json": {"title": "Thử", "text": "Thử loa", "unit_ids": ["no-such-commune"]}}),
    Case("speech of a lone full stop", "POST", "/api/radio/tts", "#/text", kwargs={"json": {"text": "."}}),
    Case("speech with NUL", "POST", "/api/radio/tts", "#/text", kwargs={"json": {"text": "xin\u0000chào"}}),
    Case("mention with NUL", "POST", "/api/sectors/mentions", "#/title",
         kwargs={"json": {"source": "báo", "url": "https://a.example/x", "published_at": "2026-10-01T00:00:00+07:00",
                          "title": "a\u0000"}}),
    Case("user with a bell in the name", "POST", "/api/users", "#/username",
         kwargs={"json": {"username": "a\u0007b", "display_name": "x", "role": "operator", "password": "x" * 16}}),
    Case("CAP in UTF-16 with a DOCTYPE", "POST", "/api/cap", "DOCTYPE",
         kwargs={"content": UTF16_DOCTYPE, "headers": {"Content-Type": "application/cap+xml"}}),
    Case("CAP billion laughs", "POST", "/api/cap", "DOCTYPE",
         kwargs={"content": LAUGHS, "headers": {"Content-Type": "application/cap+xml"}}),
    Case("CAP external entity", "POST", "/api/cap", "DOCTYPE",
         kwargs={"content": XXE, "headers": {"Content-Type": "application/cap+xml"}}),
    Case("CAP 9 KB headline", "POST", "/api/cap", "headline",
         kwargs={"content": LONG_HEADLINE, "headers": {"Content-Type": "application/cap+xml"}}),
    Case("rating comment with NUL", "POST", "/api/public/reports/PA-AAAA-AAAA/rating", "#/comment", auth=False,
         kwargs={"json": {"rating": 5, "comment": "tốt\u0000"}}),
    Case("wrong method", "PATCH", "/api/alerts", "allowed", status=(405,)),
    Case("login as text/plain", "POST", "/api/auth/login", "body", auth=False,
         kwargs={"content": b"username=a", "headers": {"Content-Type": "text/plain"}}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_with_a_reason(api, case: Case) -> None:
    client, headers, alert_id = api
    kwargs = dict(case.kwargs)
    kwargs["headers"] = {**(headers if case.auth else {}), **kwargs.get("headers", {})}
    response = client.request(case.method, case.path.replace("{alert}", str(alert_id)), **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if case.status:
        assert response.status_code in case.status, response.text[:300]
    if case.path.startswith("/open311/") and response.headers["content-type"].startswith("application/json"):
        # GeoReport v2 has its own error format: [{"code", "description"}]
        said = " ".join(e["description"] for e in response.json()).lower()
        assert case.reason.lower() in said, said
        return
    assert response.headers["content-type"].startswith("application/problem+json"), response.text[:200]
    body = response.json()
    said = (body["detail"] + " " + " ".join(str(e) for e in body.get("errors", []))).lower()
    assert case.reason.lower() in said, body
    if response.status_code == 405:
        assert "GET" in response.headers["allow"]


def test_the_corpus_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40
