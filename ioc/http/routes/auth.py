"""``/api/auth``: log in, renew the access token, log out, and who am I.

Flow: ``POST /api/auth/login`` with a user name and password answers an access token (15 minutes)
and a refresh token (14 days, single use). Send the access token as ``Authorization: Bearer ...``;
before it expires, ``POST /api/auth/refresh`` exchanges the refresh token for a new pair (the old
refresh token is spent: presenting it again ends the whole login session). ``POST /api/auth/logout``
ends the session. Login attempts are rate-limited per client address and per user name, and an
account is locked for a while after repeated failures (see docs/http-api.md, "Authentication").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ioc.auth import passwords, repository
from ioc.auth.deps import AuthFailure, Caller, auth_context, bearer_token
from ioc.auth.principal import Principal
from ioc.auth.service import AuthContext
from ioc.auth.tokens import (
    REFRESH_REFUSALS,
    InvalidToken,
    RefreshOutcome,
    revoke_session,
    rotate_refresh_token,
    session_of_refresh_token,
    start_session,
)
from ioc.http.errors import PROBLEM_TYPES, Problem, problem_body, problem_responses, problem_type

router = APIRouter(prefix="/api/auth", tags=["auth"])

Context = Annotated[AuthContext, Depends(auth_context)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


# -- models -----------------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "cb-tra-kot", "password": "mật khẩu dài"}]})

    username: str = Field(min_length=1, max_length=64, description="User name (case-insensitive)")
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "ioc_rt_Zx8...q0"}]})

    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(
        default=None, max_length=200, description="The session's refresh token; or send the access token instead"
    )


class Me(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "cb-tra-kot",
                    "display_name": "Cán bộ xã Trà Kót",
                    "role": "commune_officer",
                    "unit_id": "tra-kot",
                    "kind": "user",
                    "units": ["tra-kot"],
                    "district_wide": False,
                }
            ]
        }
    )

    username: str
    display_name: str | None = Field(default=None, description="For people; null for API keys")
    role: str = Field(description="admin, operator, leader, commune_officer, device or integration")
    unit_id: str | None
    kind: Literal["user", "api_key"]
    units: list[str] | None = Field(description="Units whose records are visible; null: every unit")
    district_wide: bool
    last_login_at: datetime | None = None


class TokenPair(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9...",
                    "token_type": "Bearer",
                    "expires_in": 900,
                    "expires_at": "2026-03-01T08:15:00Z",
                    "refresh_token": "ioc_rt_Zx8...q0",
                    "refresh_expires_at": "2026-03-15T08:00:00Z",
                    "user": Me.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                }
            ]
        }
    )

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    expires_at: datetime
    refresh_token: str = Field(description="Single use: `POST /api/auth/refresh` returns the next one")
    refresh_expires_at: datetime
    user: Me


def _example(status: int, slug: str, detail: str, path: str, **extra: Any) -> dict[str, Any]:
    return problem_body(
        status=status, title=PROBLEM_TYPES[slug], detail=detail, instance=path, type_=problem_type(slug), **extra
    )


# -- helpers ----------------------------------------------------------------------------------------


def _pool(request: Request) -> Any:
    return request.app.state.ioc.pool


def _me(principal: Principal, user: repository.User | None) -> Me:
    units = principal.visible_units()
    return Me(
        username=principal.username,
        display_name=user.display_name if user else None,
        role=principal.role,
        unit_id=principal.unit_id,
        kind=principal.kind,
        units=sorted(units) if units is not None else None,
        district_wide=principal.is_district_wide,
        last_login_at=user.last_login_at if user else None,
    )


def _pair(context: AuthContext, conn: Any, user: repository.User, refresh: Any, now: datetime) -> TokenPair:
    principal = user.principal(session_id=refresh.session_id)
    if principal.unit_id and not principal.is_district_wide:
        principal = principal.with_units(repository.units_in_scope(conn, principal.unit_id))
    access = context.tokens.issue(principal, now)
    return TokenPair(
        access_token=access.token,
        expires_in=int((access.expires_at - now).total_seconds()),
        expires_at=access.expires_at,
        refresh_token=refresh.token,
        refresh_expires_at=refresh.expires_at,
        user=_me(principal, user),
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- routes -----------------------------------------------------------------------------------------


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with a user name and password",
    responses=problem_responses(
        401,
        403,
        422,
        423,
        429,
        503,
        examples={
            401: _example(401, "invalid-credentials", "user name or password is wrong", "/api/auth/login"),
            403: _example(403, "account-disabled", "this account is disabled; ask an administrator", "/api/auth/login"),
            423: _example(
                423,
                "account-locked",
                "5 failed logins in a row: the account is locked; retry in 900 s",
                "/api/auth/login",
                retry_after_s=900,
            ),
            429: _example(
                429,
                "rate-limited",
                "too many login attempts from this address; retry in 6 s",
                "/api/auth/login",
                retry_after_s=6,
            ),
        },
    ),
)
def login(request: Request, response: Response, context: Context, body: LoginRequest) -> TokenPair:
    """Answers an access token and a refresh token. A wrong password, an unknown user and a user
    without a password all answer the same 401 in the same time. Repeated failures lock the account
    (423, with `Retry-After`); too many attempts from one address or for one name answer 429."""
    username = body.username.strip().casefold()
    limited = context.login_limiter.check(_client_address(request), username)
    if limited:
        which, wait = limited
        what = "from this address" if which == "address" else "for this user name"
        raise Problem(
            429,
            "rate-limited",
            f"too many login attempts {what}; retry in {wait} s",
            headers={"Retry-After": str(wait)},
            retry_after_s=wait,
        )
    now = context.clock.now()
    pair = None
    # authenticate() commits the failure count itself, so raising a refusal below loses nothing.
    result = repository.authenticate(_pool(request).connection, username, body.password, now, context.config.lockout)
    if result.outcome is repository.LoginOutcome.OK and result.user is not None:
        with _pool(request).connection() as conn:
            refresh = start_session(
                conn,
                result.user.id,
                now,
                context.config.tokens,
                client_addr=_client_address(request),
                user_agent=request.headers.get("user-agent"),
            )
            pair = _pair(context, conn, result.user, refresh, now)
    if pair is not None:
        response.headers.update(NO_STORE)
        return pair
    if result.outcome is repository.LoginOutcome.LOCKED:
        wait = max(1, int((result.retry_after.total_seconds() if result.retry_after else 1) + 0.999))
        raise Problem(
            423,
            "account-locked",
            f"{context.config.lockout.max_failures} failed logins in a row: the account is locked; retry in {wait} s",
            headers={"Retry-After": str(wait)},
            retry_after_s=wait,
        )
    if result.outcome is repository.LoginOutcome.DISABLED:
        raise Problem(403, "account-disabled", "this account is disabled; ask an administrator")
    raise Problem(
        401, "invalid-credentials", "user name or password is wrong", headers={"WWW-Authenticate": 'Bearer realm="ioc"'}
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new access token and refresh token",
    responses=problem_responses(
        401,
        422,
        503,
        examples={
            401: _example(
                401,
                "invalid-refresh-token",
                REFRESH_REFUSALS[RefreshOutcome.REUSED],
                "/api/auth/refresh",
                reason_code="reused",
            )
        },
    ),
)
def refresh(request: Request, response: Response, context: Context, body: RefreshRequest) -> TokenPair:
    """The refresh token is spent: keep the new one. Presenting a spent token again means it was
    copied, so the whole login session is revoked (both copies stop working); `reason_code` in the
    401 says which refusal it was: `unknown`, `expired`, `revoked` or `reused`."""
    now = context.clock.now()
    pair = None
    with _pool(request).connection() as conn:
        result = rotate_refresh_token(conn, body.refresh_token, now, context.config.tokens)
        if result.outcome is RefreshOutcome.ROTATED and result.user_id is not None:
            user = repository.get_user_by_id(conn, result.user_id)
            assert user is not None and result.refresh is not None
            pair = _pair(context, conn, user, result.refresh, now)
    if pair is None:
        raise Problem(401, "invalid-refresh-token", REFRESH_REFUSALS[result.outcome], reason_code=result.outcome.value)
    response.headers.update(NO_STORE)
    return pair


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="End the login session",
    responses=problem_responses(401, 422, 503),
)
def logout(request: Request, context: Context, body: Annotated[LogoutRequest | None, Body()] = None) -> Response:
    """Ends the session of the given refresh token, or else of the Bearer access token sent: every
    refresh token of the session stops working and so do its access tokens. Logging out of a session
    that has already ended (or of an unknown refresh token) also answers 204."""
    now = context.clock.now()
    session_id: str | None = None
    with _pool(request).connection() as conn:
        if body is not None and body.refresh_token:
            session_id = session_of_refresh_token(conn, body.refresh_token)
            if session_id is None:
                return Response(status_code=204)
        else:
            try:
                token = bearer_token(request.headers)
            except AuthFailure:
                token = None
            if not token:
                raise Problem(
                    401,
                    "not-authenticated",
                    "send the refresh token in the body or the access token as `Authorization: Bearer`",
                )
            try:
                session_id = context.tokens.verify(token, now).session_id
            except InvalidToken as exc:
                if not exc.expired:
                    raise Problem(401, "invalid-token", exc.reason) from None
                session_id = _expired_token_session(context, token)
        if session_id:
            revoke_session(conn, session_id, now, "logout")
    return Response(status_code=204)


def _expired_token_session(context: AuthContext, token: str) -> str | None:
    """The session of a correctly signed but expired access token (logout still works with one)."""
    try:
        return context.tokens.verify_ignoring_expiry(token).session_id
    except InvalidToken:
        return None


@router.get(
    "/me",
    response_model=Me,
    summary="Who the caller is: role, unit and the units they see",
    responses=problem_responses(401, 503),
)
def me(request: Request, principal: Caller) -> Me:
    user = None
    if principal.kind == "user":
        with _pool(request).connection() as conn:
            user = repository.get_user(conn, principal.username)
    return _me(principal, user)


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    summary="Change one's own password",
    responses=problem_responses(401, 403, 422, 429, 503),
)
def change_password(
    request: Request,
    context: Context,
    principal: Caller,
    current_password: Annotated[str, Body(min_length=1, max_length=1024)],
    new_password: Annotated[str, Body(min_length=1, max_length=1024)],
) -> Response:
    """Checks the current password, stores the new one and ends every other login session of the user."""
    if principal.kind != "user":
        raise Problem(403, "forbidden", "API keys have no password")
    wait = context.login_limiter.by_username.take(principal.username)
    if wait > 0:
        wait_s = max(1, int(wait + 0.999))
        raise Problem(
            429,
            "rate-limited",
            f"too many password attempts for this user name; retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
            retry_after_s=wait_s,
        )
    problem = passwords.password_problem(new_password, username=principal.username)
    if problem:
        raise Problem(
            422,
            "validation-error",
            f"/new_password: {problem}",
            errors=[{"detail": problem, "location": "body", "pointer": "#/new_password"}],
        )
    with _pool(request).connection() as conn:
        user = repository.get_user(conn, principal.username)
        stored = conn.execute("SELECT password_hash FROM users WHERE username = %s", (principal.username,)).fetchone()
    if user is None or not passwords.verify_password(stored[0] if stored else None, current_password):
        raise Problem(403, "forbidden", "the current password is wrong")
    new_hash = passwords.hash_password(new_password)
    now = context.clock.now()
    with _pool(request).connection() as conn:
        repository.set_password(conn, user.id, new_hash)
        conn.execute(
            """UPDATE auth_sessions SET revoked_at = %s, revoked_reason = 'password_reset'
               WHERE user_id = %s AND revoked_at IS NULL AND id <> %s""",
            (now, user.id, principal.session_id),
        )
    return Response(status_code=204)
