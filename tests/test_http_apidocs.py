"""The API docs pages load nothing from outside this origin and run under a no-inline-script policy."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ioc.http.app import create_app
from tests.staff import app_settings

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def test_docs_pages_use_only_local_assets(database_url: str, mqtt_url: str) -> None:
    with TestClient(create_app(app_settings(database_url, mqtt_url))) as client:
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200
            html = response.text
            assert "<script>" not in html, "inline scripts are refused by the Content-Security-Policy"
            assets = ASSET.findall(html)
            assert assets, f"{page} references no assets"
            for url in assets:
                assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
                asset = client.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 1000 or url.endswith(".js"), url
            policy = response.headers["content-security-policy"]
            script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
            assert "unsafe-inline" not in script_src and "http" not in policy
        spec = client.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["paths"]
