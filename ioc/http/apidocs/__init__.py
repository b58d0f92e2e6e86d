"""The interactive API docs (``/docs`` Swagger UI, ``/redoc``) served from this machine.

FastAPI's built-in pages load Swagger UI and ReDoc from a CDN and start them with an inline
script: an IOC on a closed government network has no CDN, and the Content-Security-Policy forbids
inline scripts. So the assets come from the ``fastapi-offline`` package (a pinned PyPI
dependency that only carries them), the pages are small static HTML files, and Swagger UI is
started by ``swagger-init.js`` from this folder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
#: Where the vendored Swagger UI / ReDoc assets are served.
ASSETS_URL = "/vendor/apidocs"


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` without any outside request (create the app with docs_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="apidocs-assets")
    app.mount("/vendor/apidocs-init", StaticFiles(directory=HERE / "static"), name="apidocs-init")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> FileResponse:
        return FileResponse(HERE / "static" / "docs.html", media_type="text/html")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> FileResponse:
        return FileResponse(HERE / "static" / "redoc.html", media_type="text/html")
