"""Access tokens, refresh tokens, login sessions and API key secrets.

**Access tokens** are short-lived JWTs (HS256, header ``typ: at+jwt``) with the claims ``sub``
(user name), ``role``, ``unit`` (unit id or null), ``sid`` (login session), ``iat``, ``exp``,
``jti``, ``iss`` and ``aud``. Their signature and expiry are checked without the database, so every
process can check them; :mod:`ioc.auth.deps` also reads the token's session (``sid``) on each
request, so a logout, a disabled account or a password reset takes effect at once instead of when
the token expires (``access_ttl``, 15 minutes by default). Expiry is checked against the injected
clock, not by the JWT library, so tests move time instead of sleeping.

The signing key is derived from ``IOC_SECRET_KEY`` with HMAC-SHA256 under a fixed label, so the same
secret can key other purposes without one kind of token ever passing for another.

**Refresh tokens** are opaque random strings (256 bits). Only their SHA-256 is stored (table
``auth_refresh_tokens``); a random 256-bit value needs no slow hash. Every login starts a
**session** (``auth_sessions``): the family of refresh tokens that descend from it. Using a refresh
token rotates it: it is marked used and a new one is returned. Presenting a token that was already
used means it was copied (or a client raced itself), so the whole session is revoked and both the
thief and the owner must log in again (OAuth 2.0 Security BCP, refresh token rotation). Logout
revokes the session. A session also ends ``session_max_age`` after login whatever the rotations.

**API keys** (devices, integrations) are ``ioc_ak_`` + 256 random bits; the database keeps their
SHA-256 (hex) in ``api_keys.key_hash``, so a key is looked up by its hash on each request, at the cost
of one SHA-256. Seeding code must store :func:`api_key_hash` of the key, not an Argon2 hash.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
from psycopg.rows import dict_row

from ioc.auth.principal import ROLES, Principal

ACCESS_TOKEN_TYPE = "at+jwt"
ISSUER = "ioc"
AUDIENCE = "ioc-api"
MIN_SECRET_LENGTH = 32
REFRESH_TOKEN_PREFIX = "ioc_rt_"
API_KEY_PREFIX = "ioc_ak_"
_KEY_LABEL = b"ioc/access-token/hs256/v1"


class AuthConfigError(RuntimeError):
    """The authentication settings cannot be used (missing or weak secret key)."""


class InvalidToken(Exception):
    """An access token that must be refused; ``reason`` is safe to show to the caller."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class TokenConfig:
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=14)
    session_max_age: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_at: datetime
    jti: str


class AccessTokens:
    """Issue and verify access tokens with one signing key."""

    def __init__(self, secret: str | None, ttl: timedelta) -> None:
        if not secret:
            raise AuthConfigError(
                "IOC_SECRET_KEY is not set: access tokens cannot be signed, so login and every "
                "authenticated route are disabled. Set IOC_SECRET_KEY to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise AuthConfigError(
                f"IOC_SECRET_KEY is too short ({len(secret)} characters; at least {MIN_SECRET_LENGTH} are "
                "needed for HS256): login and every authenticated route are disabled."
            )
        if ttl <= timedelta(0):
            raise AuthConfigError("the access token lifetime must be positive")
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.ttl = ttl

    def issue(self, principal: Principal, now: datetime) -> IssuedAccessToken:
        if principal.kind != "user":
            raise ValueError("access tokens are issued to users only; API keys authenticate themselves")
        expires_at = now + self.ttl
        jti = uuid.uuid4().hex
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal.username,
            "role": principal.role,
            "unit": principal.unit_id,
            "sid": principal.session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": jti,
        }
        token = jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": ACCESS_TOKEN_TYPE})
        return IssuedAccessToken(token=token, expires_at=datetime.fromtimestamp(claims["exp"], UTC), jti=jti)

    def verify(self, token: str, now: datetime) -> Principal:
        """The principal an access token stands for; raises :class:`InvalidToken`."""
        return self._verify(token, now)

    def verify_ignoring_expiry(self, token: str) -> Principal:
        """The principal of a correctly signed token even if expired (for logout only)."""
        return self._verify(token, None)

    def _verify(self, token: str, now: datetime | None) -> Principal:
        if not token or len(token) > 4096:
            raise InvalidToken("access token rejected: not a well-formed JWT")
        try:
            decoded = jwt.api_jwt.decode_complete(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                # exp/iat are checked below against the injected clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["sub", "role", "exp", "iat", "jti", "iss", "aud"],
                },
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"access token rejected: {_jwt_reason(exc)}") from None
        if decoded["header"].get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("access token rejected: not an access token")
        claims: dict[str, Any] = decoded["payload"]
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise InvalidToken("access token rejected: exp and iat must be integers")
        if now is not None:
            now_ts = now.timestamp()
            if now_ts >= exp:
                raise InvalidToken("access token expired; renew it with POST /api/auth/refresh", expired=True)
            if iat > now_ts + 60:
                raise InvalidToken("access token rejected: issued in the future")
        role, unit = claims["role"], claims.get("unit")
        if role not in ROLES or not isinstance(claims["sub"], str) or not (unit is None or isinstance(unit, str)):
            raise InvalidToken("access token rejected: malformed claims")
        try:
            return Principal(username=claims["sub"], role=role, unit_id=unit, kind="user", session_id=claims.get("sid"))
        except ValueError as exc:
            raise InvalidToken(f"access token rejected: {exc}") from None


def _jwt_reason(exc: jwt.InvalidTokenError) -> str:
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.DecodeError):
        return "not a well-formed JWT"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidAudienceError | jwt.InvalidIssuerError):
        return "issued for another service"
    return exc.__class__.__name__


# -- opaque secrets ------------------------------------------------------------------------------


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    """What ``api_keys.key_hash`` holds for ``key`` (hex SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()


# -- login sessions and refresh-token rotation -----------------------------------------------------


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str
    session_id: str
    expires_at: datetime


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


#: What a caller is told for each refusal (the same 401 for all; the reason helps a client decide).
REFRESH_REFUSALS = {
    RefreshOutcome.UNKNOWN: "refresh token not recognised; log in again",
    RefreshOutcome.EXPIRED: "refresh token expired; log in again",
    RefreshOutcome.REVOKED: "the session of this refresh token has ended (logout, disabled account or "
    "password reset); log in again",
    RefreshOutcome.REUSED: "this refresh token was already used once: the session has been revoked as a "
    "precaution; log in again",
}


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    #: On ROTATED: the new refresh token and the user it belongs to.
    refresh: IssuedRefreshToken | None = None
    user_id: int | None = None


def start_session(
    conn: psycopg.Connection,
    user_id: int,
    now: datetime,
    config: TokenConfig,
    *,
    client_addr: str | None = None,
    user_agent: str | None = None,
) -> IssuedRefreshToken:
    """A new login session with its first refresh token (in the caller's transaction)."""
    session_id = str(uuid.uuid4())
    session_end = now + config.session_max_age
    conn.execute(
        """INSERT INTO auth_sessions (id, user_id, created_at, expires_at, last_used_at, client_addr, user_agent)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (session_id, user_id, now, session_end, now, client_addr, (user_agent or "")[:300] or None),
    )
    return _add_refresh_token(conn, session_id, now, min(now + config.refresh_ttl, session_end))


def _add_refresh_token(
    conn: psycopg.Connection, session_id: str, now: datetime, expires_at: datetime
) -> IssuedRefreshToken:
    token = new_refresh_token()
    conn.execute(
        """INSERT INTO auth_refresh_tokens (token_hash, session_id, issued_at, expires_at)
           VALUES (%s, %s, %s, %s)""",
        (refresh_token_hash(token), session_id, now, expires_at),
    )
    return IssuedRefreshToken(token=token, session_id=session_id, expires_at=expires_at)


def rotate_refresh_token(conn: psycopg.Connection, token: str, now: datetime, config: TokenConfig) -> RefreshResult:
    """Exchange ``token`` for a new one, or say why not.

    Runs in the caller's transaction, which the caller must **commit in every outcome**: a detected
    reuse revokes the session, and that revocation must persist although the request is refused.
    The token and its session are locked, so two concurrent uses of one token are serialised and
    the second is seen as a reuse.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT t.session_id, t.expires_at, t.rotated_at, s.user_id, s.revoked_at,
                      s.expires_at AS session_expires_at, u.active
               FROM auth_refresh_tokens t
               JOIN auth_sessions s ON s.id = t.session_id
               JOIN users u ON u.id = s.user_id
               WHERE t.token_hash = %s
               FOR UPDATE OF t, s""",
            (refresh_token_hash(token),),
        ).fetchone()
    if row is None:
        return RefreshResult(RefreshOutcome.UNKNOWN)
    session_id = str(row["session_id"])
    if row["revoked_at"] is not None:
        return RefreshResult(RefreshOutcome.REVOKED)
    if row["rotated_at"] is not None:
        revoke_session(conn, session_id, now, "reuse")
        return RefreshResult(RefreshOutcome.REUSED)
    if not row["active"]:
        revoke_session(conn, session_id, now, "disabled")
        return RefreshResult(RefreshOutcome.REVOKED)
    if row["expires_at"] <= now or row["session_expires_at"] <= now:
        return RefreshResult(RefreshOutcome.EXPIRED)
    conn.execute(
        "UPDATE auth_refresh_tokens SET rotated_at = %s WHERE token_hash = %s", (now, refresh_token_hash(token))
    )
    conn.execute("UPDATE auth_sessions SET last_used_at = %s WHERE id = %s", (now, session_id))
    issued = _add_refresh_token(conn, session_id, now, min(now + config.refresh_ttl, row["session_expires_at"]))
    return RefreshResult(RefreshOutcome.ROTATED, refresh=issued, user_id=row["user_id"])


def session_of_refresh_token(conn: psycopg.Connection, token: str) -> str | None:
    row = conn.execute(
        "SELECT session_id FROM auth_refresh_tokens WHERE token_hash = %s", (refresh_token_hash(token),)
    ).fetchone()
    return str(row[0]) if row else None


def revoke_session(conn: psycopg.Connection, session_id: str, now: datetime, reason: str) -> bool:
    """End a session (all its refresh tokens); False when it was already ended or does not exist."""
    cur = conn.execute(
        """UPDATE auth_sessions SET revoked_at = %s, revoked_reason = %s
           WHERE id = %s AND revoked_at IS NULL""",
        (now, reason, session_id),
    )
    return cur.rowcount > 0


def revoke_user_sessions(conn: psycopg.Connection, user_id: int, now: datetime, reason: str) -> int:
    """End every open session of a user (disabled account, password reset); returns how many."""
    cur = conn.execute(
        """UPDATE auth_sessions SET revoked_at = %s, revoked_reason = %s
           WHERE user_id = %s AND revoked_at IS NULL""",
        (now, reason, user_id),
    )
    return cur.rowcount


def purge_sessions(conn: psycopg.Connection, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
    """Delete sessions ended (expired or revoked) more than ``keep`` ago, with their tokens.

    For a periodic maintenance job; the rows kept until then let an operator see recent
    revocations (e.g. a detected reuse) in the table.
    """
    cutoff = now - keep
    cur = conn.execute("DELETE FROM auth_sessions WHERE expires_at < %s OR revoked_at < %s", (cutoff, cutoff))
    return cur.rowcount


@dataclass(frozen=True)
class SessionState:
    """What the database says of an access token's session, read on every authenticated request."""

    user_id: int
    username: str
    role: str
    unit_id: str | None
    active: bool
    revoked_reason: str | None
    expired: bool


def session_state(conn: psycopg.Connection, session_id: str, now: datetime) -> SessionState | None:
    """The session ``session_id`` and its user, or None when there is no such session."""
    try:
        uuid.UUID(session_id)
    except (ValueError, TypeError):
        return None
    row = conn.execute(
        """SELECT u.id, u.username, u.role, u.unit_id, u.active, s.revoked_reason, s.expires_at <= %s
           FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = %s""",
        (now, session_id),
    ).fetchone()
    if row is None:
        return None
    return SessionState(*row)
