"""Open311 GeoReport v2 conformance: every endpoint in JSON and XML, errors in the spec's format."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from staff import app_settings

from ioc.auth import repository
from ioc.auth.tokens import new_api_key
from ioc.district.bootstrap import load_district_into
from ioc.district.loader import load_district
from ioc.http.app import create_app

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("json", "xml")


@pytest.fixture(scope="module")
def o311(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"))
    load_district_into(url, settings, environ={})
    keys = {}
    with psycopg.connect(url) as conn:
        for role in ("integration", "device"):
            keys[role] = new_api_key()
            repository.create_api_key(conn, name=f"o311-{role}-{secrets.token_hex(2)}", role=role, unit_id=None,
                                      key=keys[role])  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client, keys


def _parse(response, fmt: str):  # noqa: ANN001, ANN202
    if fmt == "json":
        assert response.headers["content-type"].startswith("application/json")
        return response.json()
    assert response.headers["content-type"].startswith("text/xml")
    return ET.fromstring(response.content)


def _point(unit_id: str) -> tuple[float, float]:
    district = load_district(ROOT / "config" / "district.yaml")
    point = shape(next(u for u in district.units if u.id == unit_id).polygon.model_dump()).representative_point()
    return point.y, point.x


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_and_definitions(o311, fmt: str) -> None:
    client, _ = o311
    body = _parse(client.get(f"/open311/v2/services.{fmt}", params={"jurisdiction_id": "bac-tra-my"}), fmt)
    if fmt == "json":
        codes = {s["service_code"] for s in body}
        assert {"ha-tang", "moi-truong"} <= codes and all(s["type"] == "realtime" for s in body)
    else:
        assert body.tag == "services" and body.find("service/service_code") is not None
    definition = _parse(client.get(f"/open311/v2/services/ha-tang.{fmt}"), fmt)
    # XML: one <service_definition> root holding the fields (the spec's shape), not a nested one.
    if fmt == "xml":
        assert definition.tag == "service_definition" and definition.find("service_definition") is None
    assert (definition["service_code"] if fmt == "json" else definition.findtext("service_code")) == "ha-tang"


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_get_and_token_round_trip(o311, fmt: str) -> None:
    client, keys = o311
    lat, lon = _point("tra-giac")
    form = {"api_key": keys["integration"], "jurisdiction_id": "bac-tra-my", "service_code": "ha-tang",
            "lat": str(lat), "long": str(lon), "description": "Đèn đường hỏng trước chợ.",
            "first_name": "Lê", "last_name": "Thị B", "phone": "0905000111", "media_url": "https://example.vn/a.jpg",
            "attribute[so_den]": "3"}  # fmt: skip
    created = client.post(f"/open311/v2/requests.{fmt}", data=form)
    assert created.status_code == 200, created.text
    body = _parse(created, fmt)
    request_id = body[0]["service_request_id"] if fmt == "json" else body.findtext("request/service_request_id")
    assert request_id.startswith("YC-")  # the public id: the tracking code is the reporter's secret
    one = _parse(client.get(f"/open311/v2/requests/{request_id}.{fmt}"), fmt)
    if fmt == "json":
        [item] = one
        assert (item["status"], item["service_code"], item["media_url"]) == ("open", "ha-tang",
                                                                             "https://example.vn/a.jpg")  # fmt: skip
        assert abs(item["lat"] - lat) < 1e-9 and "0905000111" not in str(item) and "Thị B" not in str(item)
    else:
        assert one.findtext("request/status") == "open" and "0905000111" not in created.text
    listed = _parse(client.get(f"/open311/v2/requests.{fmt}", params={"service_code": "ha-tang", "status": "open"}),
                    fmt)  # fmt: skip
    ids = [r["service_request_id"] for r in listed] if fmt == "json" else [
        r.findtext("service_request_id") for r in listed.findall("request")]  # fmt: skip
    assert request_id in ids
    closed = _parse(client.get(f"/open311/v2/requests.{fmt}", params={"status": "closed"}), fmt)
    assert request_id not in str(closed if fmt == "json" else ET.tostring(closed))
    token = _parse(client.get(f"/open311/v2/tokens/{request_id}.{fmt}"), fmt)
    assert (token[0]["service_request_id"] if fmt == "json" else token.findtext("request/service_request_id")) \
        == request_id  # fmt: skip


ERRORS = [
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"service_code": "ha-tang", "lat": "15.3", "long": "108.2", "description": "x"},
        403,
        "api_key",
    ),  # fmt: skip
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"api_key": "DEVICE", "service_code": "ha-tang", "lat": "15.3", "long": "108.2", "description": "x"},
        403,
        "api_key",
    ),  # fmt: skip
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"api_key": "KEY", "service_code": "nope", "lat": "15.3", "long": "108.2", "description": "x"},
        404,
        "service_code",
    ),  # fmt: skip
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"api_key": "KEY", "service_code": "ha-tang", "description": "x"},
        400,
        "location",
    ),  # fmt: skip
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"api_key": "KEY", "service_code": "ha-tang", "lat": "north", "long": "108.2", "description": "x"},
        400,
        "decimal",
    ),  # fmt: skip
    ("get", "/open311/v2/services/nope.{fmt}", None, 404, "not found"),
    ("get", "/open311/v2/requests/PA-0000-0000.{fmt}", None, 404, "not found"),
    ("get", "/open311/v2/requests/YC-0000-0000.{fmt}", None, 404, "not found"),
    ("get", "/open311/v2/tokens/YC-0000-0000.{fmt}", None, 404, "not found"),
    ("get", "/open311/v2/tokens/nope.{fmt}", None, 404, "not found"),
    (
        "post",
        "/open311/v2/requests.{fmt}",
        {"api_key": "KEY", "jurisdiction_id": "hanoi", "service_code": "ha-tang", "lat": "15.3", "long": "108.2"},
        404,
        "jurisdiction",
    ),  # fmt: skip
    ("get", "/open311/v2/requests.{fmt}?status=pending", None, 400, "status"),
    ("get", "/open311/v2/requests.{fmt}?start_date=yesterday", None, 400, "start_date"),
    ("get", "/open311/v2/services.{fmt}?jurisdiction_id=hanoi", None, 404, "jurisdiction"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_use_the_spec_format(o311, fmt: str, case: int) -> None:
    client, keys = o311
    method, path, form, status, words = ERRORS[case]
    if form:
        form = {k: {"KEY": keys["integration"], "DEVICE": keys["device"]}.get(v, v) for k, v in form.items()}
    response = client.request(method.upper(), path.format(fmt=fmt), data=form)
    assert response.status_code == status, response.text
    body = _parse(response, fmt)
    if fmt == "json":
        assert body[0]["code"] == status and words in body[0]["description"]
    else:
        assert body.tag == "errors" and body.findtext("error/code") == str(status)
        assert words in body.findtext("error/description")


def test_unknown_format_is_an_error(o311) -> None:
    client, _ = o311
    response = client.get("/open311/v2/services.csv")
    assert response.status_code == 404 and response.json()[0]["code"] == 404


def _create(client: TestClient, key: str, fmt: str = "json", **form: str):  # noqa: ANN202
    return client.post(f"/open311/v2/requests.{fmt}", data={"api_key": key, "service_code": "ha-tang", **form})


def test_conformance_details_of_post_and_list(o311) -> None:
    """Issue #15: attribute[code][] kept whole, address_id / address_string locations, optional
    description, http media_url, and service_request_id overriding the other filters."""
    client, keys = o311
    lat, lon = _point("tra-giac")
    created = client.post("/open311/v2/requests.json", data={
        "api_key": keys["integration"], "service_code": "ha-tang", "lat": str(lat), "long": str(lon),
        "attribute[loai][]": ["den", "cot"], "attribute[so_den]": "3",
        "media_url": "http://example.vn/anh.jpg"})  # fmt: skip
    assert created.status_code == 200, created.text  # no description: optional in GeoReport v2
    request_id = created.json()[0]["service_request_id"]
    from ioc.reports import public

    with psycopg.connect(client.app.state.ioc.database_url) as conn:
        attributes, media = conn.execute("SELECT attributes, media_urls FROM reports WHERE public_id = %s",
                                         (public.parse_id(request_id),)).fetchone()  # fmt: skip
    assert attributes == {"loai": ["den", "cot"], "so_den": "3"} and media == ["http://example.vn/anh.jpg"]
    by_id = _create(client, keys["integration"], address_id="TK-THON2-15", description="Cột điện nghiêng")
    assert by_id.status_code == 200, by_id.text
    by_text = _create(client, keys["integration"], address_string="Thôn 2, xã Trà Kót", description="Cột nghiêng")
    assert by_text.status_code == 200, by_text.text
    # service_request_id wins over every other filter
    wins = {"service_request_id": request_id, "service_code": "khac", "status": "closed"}
    listed = client.get("/open311/v2/requests.json", params=wins).json()
    assert [r["service_request_id"] for r in listed] == [request_id]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_discovery_document_points_at_the_endpoint(o311, fmt: str) -> None:
    client, _ = o311
    response = client.get(f"/open311/discovery.{fmt}")
    assert response.status_code == 200
    body = _parse(response, fmt)
    if fmt == "json":
        [endpoint] = body["endpoints"]
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint["url"].endswith("/open311/v2") and "application/json" in endpoint["formats"]
    else:
        assert body.tag == "discovery"
        assert body.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"


def test_a_partner_key_bound_to_a_commune_reports_there_only(o311) -> None:
    client, _ = o311
    key = new_api_key()
    with psycopg.connect(client.app.state.ioc.database_url) as conn:
        repository.create_api_key(conn, name=f"o311-tk-{secrets.token_hex(2)}", role="integration", unit_id="tra-kot",
                                  key=key)  # fmt: skip
    inside, outside = _point("tra-kot"), _point("tra-son")
    assert _create(client, key, lat=str(inside[0]), long=str(inside[1]), description="Đèn hỏng").status_code == 200
    refused = _create(client, key, lat=str(outside[0]), long=str(outside[1]), description="Đèn hỏng ở Trà Sơn")
    assert refused.status_code == 403 and "outside" in refused.json()[0]["description"]
