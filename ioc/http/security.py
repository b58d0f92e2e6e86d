"""Security headers on every response, and CORS only for the origins an operator lists.

The pages are served by the API itself (same origin), so by default no cross-origin access is
granted at all; a district that hosts a separate front end lists its origin in IOC_CORS_ORIGINS.
The Content-Security-Policy allows only this origin's scripts, styles, images and websocket (no
CDN, no inline script), which is what the pages in ``dashboards/`` are written for.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), geolocation=(self), microphone=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def tile_source(tile_url: str | None) -> str | None:
    """The CSP source of a map tile URL template (``https://{s}.tile.example/{z}/{x}/{y}.png`` ->
    ``https://*.tile.example``): only that host gets into img-src, and only when a tile URL is set."""
    if not tile_url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(tile_url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(tile_url: str | None = None) -> str:
    """The pages' policy; ``img-src`` also allows the map tile host when ``IOC_MAP_TILE_URL`` is set."""
    policy = HEADERS["Content-Security-Policy"]
    source = tile_source(tile_url)
    return policy.replace("img-src 'self' data: blob:;", f"img-src 'self' data: blob: {source};") if source else policy


# The API docs pages (Swagger UI, ReDoc) are served from this origin too (ioc/http/apidocs) but
# set style attributes and use blob workers and data: images: their policy allows that, no script.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app, csp: str | None = None) -> None:  # noqa: ANN001
        super().__init__(app)
        self.headers = {**HEADERS, "Content-Security-Policy": csp or HEADERS["Content-Security-Policy"]}

    async def dispatch(self, request: Request, call_next) -> Response:  # noqa: ANN001
        response = await call_next(request)
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)
        if request.url.path in ("/docs", "/redoc"):
            response.headers["Content-Security-Policy"] = DOCS_CSP
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def install_security(app: FastAPI, cors_origins: list[str], map_tile_url: str | None = None) -> None:
    app.add_middleware(SecurityHeaders, csp=content_security_policy(map_tile_url))
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            allow_credentials=False,
            max_age=600,
        )
