"""What the pages need from the server besides data: their configuration and vendored libraries.

The pages are static files, so anything that depends on the deployment (an optional map tile
server) is read from ``GET /api/ui-config`` rather than baked into them. Third-party browser code
(Leaflet) comes from a pinned PyPI package (XStatic-Leaflet) and is served by the app itself under
``/vendor/``: no CDN, so the wall works on a closed network and under the strict CSP.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

router = APIRouter(prefix="/api", tags=["pages"])

TIME_ZONE = "Asia/Ho_Chi_Minh"


class UiConfig(BaseModel):
    """Deployment settings the pages read at start-up."""

    map_tile_url: str | None = Field(
        description="Leaflet tile URL template (IOC_MAP_TILE_URL); null: draw unit polygons only (works offline)",
        examples=[None],
    )
    time_zone: str = Field(description="Every time on the pages is shown in this zone", examples=[TIME_ZONE])
    default_language: str = Field(description="Language of the pages until the user picks another", examples=["vi"])
    languages: list[str] = Field(examples=[["vi", "en"]])


@router.get("/ui-config", response_model=UiConfig, summary="Configuration of the pages (public)")
async def ui_config(request: Request) -> UiConfig:
    settings = request.app.state.ioc.settings
    return UiConfig(map_tile_url=settings.map_tile_url, time_zone=TIME_ZONE, default_language="vi",
                    languages=["vi", "en"])  # fmt: skip


def vendor_dirs() -> dict[str, Path]:
    """URL prefix -> folder of each vendored browser library (from its PyPI package)."""
    import xstatic.pkg.leaflet

    return {"/vendor/leaflet": Path(xstatic.pkg.leaflet.BASE_DIR)}


def mount_vendor(app: FastAPI) -> None:
    """Serve the vendored libraries; call before the catch-all pages mount at ``/``."""
    for prefix, folder in vendor_dirs().items():
        app.mount(prefix, StaticFiles(directory=folder), name=prefix.strip("/").replace("/", "-"))
