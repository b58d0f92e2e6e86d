"""``/api/auth``: log in, renew the access token, log out, and who am I.

Flow: ``POST /api/auth/login`` with a user name and password answers an access token (15 minutes)
and a refresh token (14 days, single use). Send the access token as ``Authorization: Bearer ...``;
before it expires, ``POST /api/auth/refresh`` exchanges the refresh token for a new pair (the old
refresh token is spent: presenting it again ends the whole login session). ``POST /api/auth/logout``
ends the session. Failed logins slow down the address they come from (per account and overall,
growing delays, shared by every replica); no account is ever locked by them (see docs/http-api.md,
"Authentication").
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ioc.auth import passwords, repository, throttle
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


INVALID_CREDENTIALS = "user name or password is wrong"


def _refused() -> Problem:
    """The one answer to a refused login: unknown user, wrong password and throttled look alike."""
    return Problem(401, "invalid-credentials", INVALID_CREDENTIALS, headers={"WWW-Authenticate": 'Bearer realm="ioc"'})


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with a user name and password",
    responses=problem_responses(
        401,
        403,
        422,
        503,
        examples={
            401: _example(401, "invalid-credentials", INVALID_CREDENTIALS, "/api/auth/login"),
            403: _example(403, "account-disabled", "this account is disabled; ask an administrator", "/api/auth/login"),
        },
    ),
)
def login(request: Request, response: Response, context: Context, body: LoginRequest) -> TokenPair:
    """Answers an access token and a refresh token. A wrong password, an unknown user, a user without
    a password and an attempt slowed down by the throttle all answer the same 401 after the same
    hashing time. Failures never lock an account: they slow down the address they come from, for
    that account and overall (growing delays, `ioc.auth.throttle`); the owner logging in from
    elsewhere is not affected. Every refusal is audited; a guessing pattern raises an alert."""
    username = body.username.strip().casefold()
    address = _client_address(request)
    policy = context.config.throttle
    now = context.clock.now()
    pool = _pool(request)
    with pool.connection() as conn:
        throttled = throttle.blocked(conn, address, username, now)
    if throttled:
        passwords.verify_password(None, body.password)  # the same time as a real check
        outcome = "throttled"
    else:
        result = repository.authenticate(pool.connection, username, body.password, now)
        if result.outcome is repository.LoginOutcome.OK and result.user is not None:
            with pool.connection() as conn:
                throttle.record_success(conn, address, username)
                refresh = start_session(conn, result.user.id, now, context.config.tokens, client_addr=address,
                                        user_agent=request.headers.get("user-agent"))  # fmt: skip
                pair = _pair(context, conn, result.user, refresh, now)
            response.headers.update(NO_STORE)
            return pair
        outcome = "disabled" if result.outcome is repository.LoginOutcome.DISABLED else "bad_credentials"
    with pool.connection() as conn:
        throttle.record_failure(conn, address, username, now, outcome, policy)
        if secrets.randbelow(200) == 0:  # now and then, forget old counts (no scheduler needed)
            throttle.forget_old(conn, now, policy, keep_audit=timedelta(days=90))
        suspects = throttle.brute_force_suspects(conn, now, policy, address=address, username=username)
        if suspects:
            _raise_brute_force_alerts(conn, suspects, now)
    if outcome == "disabled":  # only said to whoever knows the password
        raise Problem(403, "account-disabled", "this account is disabled; ask an administrator")
    raise _refused()


def _raise_brute_force_alerts(conn: Any, suspects: list[throttle.Suspect], now: datetime) -> None:
    """A district alert per suspect (deduplicated while open: repeats only raise its count)."""
    from ioc.alerts.model import AlertDraft, Severity
    from ioc.alerts.store import raise_alerts

    drafts = []
    for s in suspects:
        if s.kind == "address":
            title = f"Dò mật khẩu: {s.failures} lần đăng nhập sai từ {s.who} trên {s.spread} tài khoản"
        else:
            title = f"Dò mật khẩu tài khoản {s.who}: {s.failures} lần sai từ {s.spread} địa chỉ"
        drafts.append(AlertDraft(kind="security.brute_force", severity=Severity.SEVERE, title=title, at=now,
                                 unit_id=None, dedup_key=s.dedup_key,
                                 evidence={"kind": s.kind, "who": s.who, "failures": s.failures,
                                           "spread": s.spread}))  # fmt: skip
    raise_alerts(conn, drafts, now=now)


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
