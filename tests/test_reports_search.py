"""Staff find a citizen's report by the tracking code the citizen reads out on the phone (or by its
public id), within their own commune only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from staff import district_app_settings, token

from ioc.district.loader import load_district
from ioc.http.app import create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    settings = district_app_settings(url, mqtt_url, tmp_path_factory.mktemp("var"))
    with TestClient(create_app(settings)) as client:
        yield client, url


def test_staff_find_a_report_by_its_tracking_code_or_public_id_in_their_commune_only(app) -> None:
    client, url = app
    district = load_district(ROOT / "config" / "district.yaml")
    unit = next(u for u in district.units if u.id == "tra-kot")
    point = shape(unit.polygon.model_dump()).representative_point()
    sent = client.post("/api/public/reports", data={"category": "ha-tang", "description": "Cột điện nghiêng ở thôn 2",
                                                     "lat": str(point.y), "lon": str(point.x)})  # fmt: skip
    assert sent.status_code == 201, sent.text
    code = sent.json()["tracking_code"]  # PA-XXXX-XXXX, the citizen's secret
    kot = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-kot')}"}
    son = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'tra-son')}"}
    found = client.get("/api/reports", headers=kot, params={"q": code.lower().replace("-", " ")}).json()
    assert len(found) == 1 and found[0]["tracking_code"] == code
    by_public = client.get("/api/reports", headers=kot, params={"q": found[0]["public_id"]}).json()
    assert [r["id"] for r in by_public] == [found[0]["id"]]
    assert client.get("/api/reports", headers=son, params={"q": code}).json() == []  # another commune: nothing
    assert client.get("/api/reports", headers=kot, params={"q": "cot dien nghieng"}).json()[0]["id"] == found[0]["id"]
