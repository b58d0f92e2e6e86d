"""FastAPI dependencies: who is calling, may they, and which units they see.

Declare what a route needs in its signature::

    @router.get("/things")
    def list_things(principal: Caller) -> ...                       # any authenticated caller
    @router.post("/users")
    def create_user(admin: Annotated[Principal, Depends(require_roles("admin"))]) -> ...

A caller authenticates with ``Authorization: Bearer <access token>`` (people, from
``POST /api/auth/login``) or ``X-API-Key: <key>`` (devices and integrations). Each request also
reads the token's login session from the database, so logout, a disabled account, a password reset
or a changed role take effect at once rather than when the 15-minute token expires. A unit-bound
principal (commune officer, API key with a unit) comes back with ``units`` widened to its unit and
every unit that rolls up to it, so ``principal.can_see_unit(...)`` and ``principal.visible_units()``
answer without further queries.

Websockets cannot send headers from a browser: :func:`websocket_principal` takes the access token
from the ``access_token`` query parameter or from a first ``{"type": "auth", "access_token": ...}``
message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.security import APIKeyHeader, HTTPBearer
from psycopg_pool import ConnectionPool
from starlette.datastructures import Headers
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ioc.auth import repository
from ioc.auth.principal import Principal
from ioc.auth.service import AuthContext
from ioc.auth.tokens import AuthConfigError, InvalidToken, session_state
from ioc.http.errors import Problem

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
#: How long a websocket without a token in its URL has to send its ``auth`` message.
WEBSOCKET_AUTH_TIMEOUT_S = 5.0
#: Long-lived streams (websocket, MJPEG) check their credentials again this often, so a logout, a
#: disabled account or an expired token ends them within 5 s (one indexed session lookup each time).
STREAM_RECHECK_S = 2.0

_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="accessToken",
    description="Access token from `POST /api/auth/login` (15 minutes; renew with `POST /api/auth/refresh`).",
)
_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="apiKey",
    description="API key of a device or an integration (created by an admin; `ioc users api-key create`).",
)
_context_lock = threading.Lock()


class AuthFailure(Exception):
    """A request that must be refused as unauthenticated (401); ``slug`` is the problem type."""

    def __init__(self, slug: str, reason: str) -> None:
        super().__init__(reason)
        self.slug = slug
        self.reason = reason


# -- the app's auth context ------------------------------------------------------------------------


def auth_context_of(app: Any) -> AuthContext:
    """The app's :class:`AuthContext`, built on first use; 503 problem when the key is unusable.

    Tests may set ``app.state.auth = AuthContext(...)`` (e.g. with a ``ManualClock``) beforehand.
    """
    context = getattr(app.state, "auth", None)
    if isinstance(context, AuthContext):
        return context
    with _context_lock:
        context = getattr(app.state, "auth", None)
        if context is None:
            try:
                context = AuthContext.from_settings(app.state.ioc.settings)
            except AuthConfigError as exc:
                log.error("authentication disabled: %s", exc)
                context = exc
            app.state.auth = context
    if isinstance(context, AuthConfigError):
        raise Problem(503, "auth-not-configured", str(context), headers={"Retry-After": "60"})
    return context


def auth_context(request: Request) -> AuthContext:
    return auth_context_of(request.app)


def _pool(app: Any) -> ConnectionPool:
    return app.state.ioc.pool


# -- resolving credentials ------------------------------------------------------------------------


def _credentials(headers: Headers) -> tuple[str | None, str | None]:
    """(access token, API key) from the headers; AuthFailure for a malformed Authorization."""
    token = None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthFailure("not-authenticated", "the Authorization header must be `Bearer <access token>`")
        token = value.strip()
    api_key = headers.get(API_KEY_HEADER) or None
    if token and api_key:
        raise AuthFailure("not-authenticated", "send either a Bearer access token or an X-API-Key, not both")
    return token, api_key


def resolve_principal(
    context: AuthContext, pool: ConnectionPool, *, access_token: str | None, api_key: str | None
) -> Principal:
    """The principal for these credentials, with its unit scope; raises :class:`AuthFailure`.

    Blocking (database): call from a worker thread in async code.
    """
    now = context.clock.now()
    if access_token:
        try:
            principal = context.tokens.verify(access_token, now)
        except InvalidToken as exc:
            raise AuthFailure("invalid-token", exc.reason) from None
        with pool.connection() as conn:
            state = session_state(conn, principal.session_id or "", now)
            if state is None:
                raise AuthFailure("invalid-token", "the login session of this access token does not exist")
            if state.revoked_reason is not None:
                reason = f"the login session has ended ({state.revoked_reason}); log in again"
                raise AuthFailure("invalid-token", reason)
            if state.expired:
                raise AuthFailure("invalid-token", "the login session has expired; log in again")
            if not state.active:
                raise AuthFailure("invalid-token", "this account has been disabled")
            if (state.username, state.role, state.unit_id) != (principal.username, principal.role, principal.unit_id):
                raise AuthFailure("invalid-token", "the account's role or unit has changed; log in again")
            return _with_scope(conn, principal)
    if api_key:
        with pool.connection() as conn:
            found = repository.verify_api_key(conn, api_key)
            if found is None:
                raise AuthFailure("invalid-api-key", "API key not recognised or revoked")
            return _with_scope(conn, found)
    raise AuthFailure(
        "not-authenticated", "send `Authorization: Bearer <access token>` (log in at /api/auth/login) or `X-API-Key`"
    )


def _with_scope(conn: Any, principal: Principal) -> Principal:
    if principal.unit_id is None or principal.is_district_wide:
        return principal
    return principal.with_units(repository.units_in_scope(conn, principal.unit_id))


def _unauthorized(failure: AuthFailure) -> Problem:
    error = "invalid_token" if failure.slug in ("invalid-token",) else None
    challenge = 'Bearer realm="ioc"' + (f', error="{error}"' if error else "")
    return Problem(401, failure.slug, failure.reason, headers={"WWW-Authenticate": challenge})


# -- HTTP dependencies ----------------------------------------------------------------------------


def current_principal(
    request: Request,
    _bearer: Annotated[Any, Depends(_bearer_scheme)] = None,
    _api_key: Annotated[Any, Depends(_api_key_scheme)] = None,
) -> Principal:
    """The authenticated caller (401 problem otherwise). The two unused parameters put the
    security schemes in OpenAPI ("Authorize" in /docs); headers are parsed here for precise reasons."""
    context = auth_context(request)
    try:
        token, api_key = _credentials(request.headers)
        principal = resolve_principal(context, _pool(request.app), access_token=token, api_key=api_key)
    except AuthFailure as failure:
        raise _unauthorized(failure) from None
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency: the caller, who must have one of ``roles`` (403 problem otherwise)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = ", ".join(roles)

    def dependency(principal: Caller) -> Principal:
        if not principal.has_role(*roles):
            raise Problem(403, "forbidden", f"role {principal.role!r} may not do this; allowed: {allowed}")
        return principal

    dependency.__name__ = f"require_roles_{'_'.join(roles)}"
    return dependency


AdminCaller = Annotated[Principal, Depends(require_roles("admin"))]


def require_staff(principal: Principal, what: str) -> None:
    """People only: API keys (devices, integrations) are refused ``what`` with a 403 that says so."""
    if principal.kind != "user":
        raise Problem(403, "forbidden", f"{what} are for staff accounts, not API keys")


def check_action(principal: Principal, action: str, *, officer: frozenset[str], leader: frozenset[str],
                 what: str) -> None:  # fmt: skip
    """The one rule of the action endpoints (alerts, incidents): admins and operators do everything,
    commune officers the ``officer`` actions, leaders the ``leader`` ones; anyone else 403."""
    if principal.has_role("admin", "operator"):
        return
    allowed = officer if principal.has_role("commune_officer") else leader
    if action not in allowed:
        raise Problem(403, "forbidden", f"a {principal.role} may not {action} {what}")


def require_unit_visible(principal: Principal, unit_id: str | None, what: str = "resource") -> None:
    """404 problem when records of ``unit_id`` are outside the caller's units (existence not revealed)."""
    if not principal.can_see_unit(unit_id):
        raise Problem(404, "not-found", f"no such {what}, or not visible to you")


# -- websockets -----------------------------------------------------------------------------------


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """The principal of a websocket connection, or None (close it with code 1008).

    Credentials, in order: ``?access_token=`` in the URL, an ``Authorization: Bearer`` or
    ``X-API-Key`` header (non-browser clients), else a first text message
    ``{"type": "auth", "access_token": "..."}`` within :data:`WEBSOCKET_AUTH_TIMEOUT_S`. Only in that
    last case is the websocket accepted here (a message cannot be read before); callers accept it
    only when ``websocket.client_state`` is still ``CONNECTING``. On failure the reason is left in
    ``websocket.state.auth_error`` (safe to send to the client).
    """
    websocket.state.auth_error = None
    try:
        context = auth_context_of(websocket.app)
    except Problem as problem:
        websocket.state.auth_error = problem.detail
        return None
    try:
        token = websocket.query_params.get("access_token") or None
        api_key = None
        if token is None:
            token, api_key = _credentials(websocket.headers)
        if token is None and api_key is None:
            token = await _first_message_token(websocket)
        websocket.state.credentials = (token, api_key)  # for re-checks on long-lived connections
        return await asyncio.to_thread(
            resolve_principal, context, _pool(websocket.app), access_token=token, api_key=api_key
        )
    except AuthFailure as failure:
        websocket.state.auth_error = failure.reason
        return None


async def websocket_still_valid(websocket: WebSocket) -> str | None:
    """None while the connection's credentials are still good, else why not (expired token, logout,
    disabled account, changed role): long-lived connections call this periodically.

    Connections holding the same credentials (a wall's screens, one operator's tabs, a bench's 1,000
    clients) share one lookup: a result is reused for :data:`SHARED_CHECK_S`, so a logout still ends
    every stream within ``STREAM_RECHECK_S + SHARED_CHECK_S`` (3 s), and the database sees one query
    per credentials per interval instead of one per connection.
    """
    token, api_key = getattr(websocket.state, "credentials", (None, None))
    checks = getattr(websocket.app.state, "stream_checks", None)
    if checks is None:
        checks = websocket.app.state.stream_checks = _SharedChecks()
    return await checks.reason(
        (token, api_key),
        lambda: resolve_principal(
            auth_context_of(websocket.app), _pool(websocket.app), access_token=token, api_key=api_key
        ),  # fmt: skip
    )


#: How long one credential check answers for every connection holding the same credentials.
SHARED_CHECK_S = 1.0


class _SharedChecks:
    """Credential checks in flight or recent, by credentials: see :func:`websocket_still_valid`."""

    def __init__(self) -> None:
        self._checks: dict[tuple[str | None, str | None], tuple[float, asyncio.Future[str | None]]] = {}
        self._pruned_at = 0.0

    async def reason(self, key: tuple[str | None, str | None], check: Callable[[], Principal]) -> str | None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        found = self._checks.get(key)
        if found is None or now - found[0] > SHARED_CHECK_S:
            if now - self._pruned_at > 10 * SHARED_CHECK_S:
                self._checks = {k: v for k, v in self._checks.items() if now - v[0] <= SHARED_CHECK_S}
                self._pruned_at = now
            found = (now, asyncio.ensure_future(self._run(check)))
            self._checks[key] = found
        return await asyncio.shield(found[1])

    @staticmethod
    async def _run(check: Callable[[], Principal]) -> str | None:
        try:
            await asyncio.to_thread(check)
        except AuthFailure as failure:
            return failure.reason
        except Problem as problem:
            return problem.detail
        return None


async def _first_message_token(websocket: WebSocket) -> str:
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    try:
        message = await asyncio.wait_for(websocket.receive_json(), timeout=WEBSOCKET_AUTH_TIMEOUT_S)
    except TimeoutError:
        raise AuthFailure("not-authenticated", "no auth message within the time allowed") from None
    except (WebSocketDisconnect, RuntimeError, ValueError, KeyError):
        raise AuthFailure("not-authenticated", 'the first message must be {"type": "auth", ...}') from None
    token = message.get("access_token") if isinstance(message, dict) and message.get("type") == "auth" else None
    if not isinstance(token, str) or not token:
        raise AuthFailure("not-authenticated", 'the first message must be {"type": "auth", "access_token": "..."}')
    return token


def bearer_token(headers: Headers) -> str | None:
    """The Bearer token of a request, if any (AuthFailure when the header is malformed)."""
    return _credentials(headers)[0]
