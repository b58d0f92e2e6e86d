"""Helpers shared by the tests/test_auth_*.py modules (no tests here).

``AuthWorld`` is an app with the auth and users routers, the problem handlers, a database pool and
a :class:`ManualClock`, plus a couple of probe routes that exercise ``require_roles``, the unit
scope and ``websocket_principal`` the way feature routers use them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient

from ioc.auth import passwords, repository
from ioc.auth.deps import Caller, require_roles, require_unit_visible, websocket_principal
from ioc.auth.principal import Principal
from ioc.auth.service import AuthConfig, AuthContext
from ioc.auth.tokens import new_api_key
from ioc.clock import ManualClock
from ioc.http.errors import install_error_handlers
from ioc.http.routes import auth as auth_routes
from ioc.http.routes import users as user_routes
from ioc.http.state import AppState
from ioc.settings import Settings
from ioc.storage.db import make_pool

SECRET = "test-secret-key-" + "x" * 40
PASSWORD = "correct horse battery"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@contextmanager
def fast_hashing() -> Iterator[None]:
    previous = passwords.use_profile("test-insecure")
    try:
        yield
    finally:
        passwords.use_profile(previous)


def build_app(settings: Settings, pool: Any, context: AuthContext | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(auth_routes.router)
    app.include_router(user_routes.router)
    app.state.ioc = AppState(settings=settings, database_url=settings.database_url or "", pool=pool, mqtt=None)
    if context is not None:
        app.state.auth = context

    @app.get("/probe/units/{unit_id}")
    def see_unit(principal: Caller, unit_id: str) -> dict[str, str]:
        require_unit_visible(principal, unit_id, "unit")
        return {"unit": unit_id}

    @app.get("/probe/operators-only")
    def operators_only(
        principal: Annotated[Principal, Depends(require_roles("admin", "operator"))],
    ) -> dict[str, str]:
        return {"role": principal.role}

    @app.websocket("/probe/ws")
    async def ws(websocket: WebSocket) -> None:
        principal = await websocket_principal(websocket)
        if websocket.client_state.name == "CONNECTING":
            await websocket.accept()
        if principal is None:
            await websocket.send_json({"type": "error", "reason": websocket.state.auth_error})
            await websocket.close(code=1008)
            return
        await websocket.send_json({"type": "hello", "user": principal.username, "units": sorted(principal.units)})
        await websocket.close()

    return app


@dataclass
class AuthWorld:
    database_url: str
    pool: Any
    clock: ManualClock
    client: TestClient
    context: AuthContext
    client_address: str = "testclient"

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            cur = conn.execute(query, params)
            rows = cur.fetchall() if cur.description else []
            conn.commit()
        return rows

    def add_unit(self, unit_id: str, *, parent: str | None = None, successor: str | None = None) -> str:
        self.sql(
            "INSERT INTO units (id, name, name_search, level, parent_id, successor_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (unit_id, unit_id, unit_id, "commune", parent, successor),
        )
        return unit_id

    def add_user(
        self, role: str, *, unit: str | None = None, password: str | None = PASSWORD, username: str | None = None
    ) -> str:
        username = username or unique(role.replace("_", "-"))
        with psycopg.connect(self.database_url) as conn:
            repository.create_user(
                conn,
                username=username,
                display_name=f"Người dùng {username}",
                role=role,
                unit_id=unit,
                password_hash=passwords.hash_password(password) if password else None,
            )
            conn.commit()
        return username

    def add_api_key(self, role: str = "device", *, unit: str | None = None) -> tuple[str, str]:
        name, key = unique("key"), new_api_key()
        with psycopg.connect(self.database_url) as conn:
            repository.create_api_key(conn, name=name, role=role, unit_id=unit, key=key)
            conn.commit()
        return name, key

    def client_from(self, address: str) -> TestClient:
        """A client of the same app calling from ``address`` (another machine)."""
        return TestClient(self.client.app, client=(address, 50000))

    def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()

    def bearer(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(username, password)['access_token']}"}


@contextmanager
def auth_world(
    database_url: str, *, config: AuthConfig | None = None, secret: str | None = SECRET
) -> Iterator[AuthWorld]:
    settings = Settings(_env_file=None, database_url=database_url, secret_key=secret)  # type: ignore[call-arg]
    clock = ManualClock(datetime(2026, 3, 1, 1, 0, tzinfo=UTC))
    context = AuthContext(secret, config=config, clock=clock) if secret else None
    pool = make_pool(database_url, max_size=4, application_name="ioc-test-auth")
    pool.open(wait=True)
    try:
        # Each world logs in from its own client address: login throttling (per address, stored in the
        # shared test database) must not carry over from one test to the next.
        address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        with fast_hashing(), TestClient(build_app(settings, pool, context), client=(address, 50000)) as client:
            yield AuthWorld(database_url, pool, clock, client, context, address)  # type: ignore[arg-type]
    finally:
        pool.close()


def assert_problem(response: Any, status: int, slug: str, detail_contains: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem of type ``/problems/<slug>``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    assert body["title"] and body["instance"] == response.request.url.path
    assert detail_contains in body["detail"], body
    return body
