"""Users, login with lockout, API keys and unit scopes: the SQL of the auth aggregate.

Every function works in the caller's transaction and takes "now" as an argument (from an injected
:class:`ioc.clock.Clock`), so lockout periods are tested by moving a manual clock.

**No lockout.** Failed logins never lock an account (that let anyone lock anyone out); guessers
are slowed down per client address and per (account, address) by :mod:`ioc.auth.throttle`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from ioc.auth import passwords
from ioc.auth.principal import Principal
from ioc.auth.tokens import api_key_hash

_USER_COLUMNS = (
    "id, username, display_name, role, unit_id, active, failed_logins, locked_until, created_at, last_login_at"
)


class UserExists(Exception):
    pass


class UnknownUnit(Exception):
    pass


class ApiKeyExists(Exception):
    pass


@dataclass(frozen=True)
class LockoutPolicy:
    """Obsolete (accounts are no longer locked by failures); kept so old configurations still load."""

    #: Failed logins in a row that lock the account.
    max_failures: int = 5
    #: A failure more than this after the previous one starts a new count.
    window: timedelta = timedelta(minutes=15)
    #: How long a locked account refuses every login.
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    unit_id: str | None
    active: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def principal(self, session_id: str | None = None) -> Principal:
        return Principal(
            username=self.username,
            role=self.role,  # type: ignore[arg-type]
            unit_id=self.unit_id,
            kind="user",
            session_id=session_id,
        )

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class LoginOutcome(enum.Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    user: User | None = None
    #: On LOCKED: how long until the next attempt can succeed.
    retry_after: timedelta | None = None


def _login_row(
    conn: psycopg.Connection, username: str, *, lock: bool
) -> tuple[User, str | None, datetime | None] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_USER_COLUMNS}, password_hash, last_failed_login_at FROM users WHERE username = %s"
            + (" FOR UPDATE" if lock else ""),
            (username,),
        ).fetchone()
    if row is None:
        return None
    password_hash = row.pop("password_hash")
    last_failed = row.pop("last_failed_login_at")
    return User(**row), password_hash, last_failed


def authenticate(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]],
    username: str,
    password: str,
    now: datetime,
    policy: LockoutPolicy | None = None,
) -> LoginResult:
    """Check a login and record its outcome (failure count, last login); commits itself.

    ``connection`` opens a connection that commits on a clean exit (``pool.connection``). The
    Argon2 verification (tens of milliseconds) runs **between** two short transactions, so a burst
    of logins does not hold database connections or row locks while hashing; the outcome is then
    applied under the user row's lock against the row as it is by then, so a password changed
    meanwhile does not let the old one in.

    No account is ever locked by failures (anyone could lock anyone out): slowing guessers down is
    :mod:`ioc.auth.throttle`'s job, per client address and per (account, address). ``failed_logins``
    still counts failures since the last success, for the admin list; ``policy`` is ignored (kept
    for callers of the old signature).

    A disabled account answers DISABLED only when the password is right; an unknown user costs the
    same hashing time as a known one.
    """
    with connection() as conn:
        found = _login_row(conn, username, lock=False)
    if found is None:
        passwords.verify_password(None, password)
        return LoginResult(LoginOutcome.BAD_CREDENTIALS)
    user, password_hash, _ = found
    matches = passwords.verify_password(password_hash, password)
    new_hash = None
    if matches and user.active and password_hash and passwords.needs_rehash(password_hash):
        new_hash = passwords.hash_password(password)
    with connection() as conn:
        found = _login_row(conn, username, lock=True)
        if found is None:
            return LoginResult(LoginOutcome.BAD_CREDENTIALS)
        user, current_hash, _ = found
        if matches and current_hash == password_hash:
            if not user.active:
                return LoginResult(LoginOutcome.DISABLED, user=user)
            conn.execute(
                """UPDATE users SET failed_logins = 0, locked_until = NULL, last_failed_login_at = NULL,
                          last_login_at = %s, password_hash = COALESCE(%s, password_hash)
                   WHERE id = %s""",
                (now, new_hash, user.id),
            )
            return LoginResult(
                LoginOutcome.OK, user=replace(user, failed_logins=0, locked_until=None, last_login_at=now)
            )
        conn.execute(
            "UPDATE users SET failed_logins = failed_logins + 1, last_failed_login_at = %s WHERE id = %s",
            (now, user.id),
        )
        return LoginResult(LoginOutcome.BAD_CREDENTIALS, user=user)


# -- users ---------------------------------------------------------------------------------------


def get_user(conn: psycopg.Connection, username: str) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (username,)).fetchone()
    return User(**row) if row else None


def get_user_by_id(conn: psycopg.Connection, user_id: int) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
    return User(**row) if row else None


def list_users(
    conn: psycopg.Connection,
    *,
    role: str | None = None,
    unit_id: str | None = None,
    active: bool | None = None,
    limit: int = 500,
) -> list[User]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_USER_COLUMNS} FROM users
                WHERE (%(role)s::text IS NULL OR role = %(role)s)
                  AND (%(unit)s::text IS NULL OR unit_id = %(unit)s)
                  AND (%(active)s::boolean IS NULL OR active = %(active)s)
                ORDER BY username LIMIT %(limit)s""",
            {"role": role, "unit": unit_id, "active": active, "limit": limit},
        ).fetchall()
    return [User(**row) for row in rows]


def create_user(
    conn: psycopg.Connection,
    *,
    username: str,
    display_name: str,
    role: str,
    unit_id: str | None,
    password_hash: str | None,
) -> User:
    """Insert a user; raises :class:`UserExists` or :class:`UnknownUnit` (savepoint-safe)."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"""INSERT INTO users (username, display_name, role, unit_id, password_hash)
                    VALUES (%s, %s, %s, %s, %s) RETURNING {_USER_COLUMNS}""",
                (username, display_name, role, unit_id, password_hash),
            ).fetchone()
    except pg_errors.UniqueViolation:
        raise UserExists(username) from None
    except pg_errors.ForeignKeyViolation:
        raise UnknownUnit(unit_id) from None
    assert row is not None
    return User(**row)


def set_active(conn: psycopg.Connection, user_id: int, active: bool) -> None:
    conn.execute("UPDATE users SET active = %s WHERE id = %s", (active, user_id))


def set_password(conn: psycopg.Connection, user_id: int, password_hash: str) -> None:
    """Store a new password hash and lift any lockout."""
    conn.execute(
        """UPDATE users SET password_hash = %s, failed_logins = 0, locked_until = NULL,
                  last_failed_login_at = NULL WHERE id = %s""",
        (password_hash, user_id),
    )


# -- API keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    unit_id: str | None
    active: bool
    created_at: datetime

    def principal(self) -> Principal:
        return Principal(username=self.name, role=self.role, unit_id=self.unit_id, kind="api_key")  # type: ignore[arg-type]


_KEY_COLUMNS = "id, name, role, unit_id, active, created_at"


def create_api_key(conn: psycopg.Connection, *, name: str, role: str, unit_id: str | None, key: str) -> ApiKey:
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"""INSERT INTO api_keys (name, key_hash, role, unit_id) VALUES (%s, %s, %s, %s)
                    RETURNING {_KEY_COLUMNS}""",
                (name, api_key_hash(key), role, unit_id),
            ).fetchone()
    except pg_errors.UniqueViolation:
        raise ApiKeyExists(name) from None
    except pg_errors.ForeignKeyViolation:
        raise UnknownUnit(unit_id) from None
    assert row is not None
    return ApiKey(**row)


def list_api_keys(conn: psycopg.Connection) -> list[ApiKey]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY name").fetchall()
    return [ApiKey(**row) for row in rows]


def get_api_key(conn: psycopg.Connection, name: str) -> ApiKey | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE name = %s", (name,)).fetchone()
    return ApiKey(**row) if row else None


def revoke_api_key(conn: psycopg.Connection, name: str) -> bool:
    cur = conn.execute("UPDATE api_keys SET active = false WHERE name = %s", (name,))
    return cur.rowcount > 0


def verify_api_key(conn: psycopg.Connection, key: str) -> Principal | None:
    """The principal of an active API key, or None (unknown, revoked, or not an API key at all)."""
    if not key or len(key) > 200:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = %s AND active", (api_key_hash(key),)
        ).fetchone()
    return ApiKey(**row).principal() if row else None


# -- unit scope ----------------------------------------------------------------------------------


def units_in_scope(conn: psycopg.Connection, unit_id: str) -> frozenset[str]:
    """``unit_id`` and every unit whose records roll up to it.

    A unit rolls up to U when U is its parent (at any depth) or its successor after a merger (at
    any depth), or any mix of the two: a hamlet of a commune that was merged into U is in U's scope.
    """
    rows = conn.execute(
        """WITH RECURSIVE scope(id) AS (
               SELECT %(unit)s::text
               UNION
               SELECT u.id FROM units u JOIN scope s ON u.parent_id = s.id OR u.successor_id = s.id
           )
           SELECT id FROM scope""",
        {"unit": unit_id},
    ).fetchall()
    return frozenset(row[0] for row in rows)
