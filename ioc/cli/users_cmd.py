"""``ioc users``: accounts and API keys from the command line (the first admin, devices, resets).

Passwords are never taken as arguments (they would stay in the shell history and the process
list): they come from the environment variable named by ``--password-env`` (default
``IOC_NEW_USER_PASSWORD``) or from a hidden prompt. An API key's secret is printed once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ioc.cli import exit_codes

app = typer.Typer(help="Users and API keys.", no_args_is_help=True)
api_key_app = typer.Typer(help="API keys of devices and integrations.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PASSWORD_ENV = "IOC_NEW_USER_PASSWORD"
USER_ROLES = ("admin", "operator", "leader", "commune_officer")
KEY_ROLES = ("device", "integration")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,63}$")

Role = Annotated[str, typer.Option("--role", help=f"One of {', '.join(USER_ROLES)}.")]
Unit = Annotated[str | None, typer.Option("--unit", help="Unit id (required for a commune officer).")]
PasswordEnv = Annotated[
    str, typer.Option("--password-env", help="Read the password from this environment variable when it is set.")
]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document instead of a table.")]


def _fail(message: str, code: int = exit_codes.FAILED) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


@contextmanager
def _connection() -> Iterator[Any]:
    """One transaction on the configured (or embedded) database, committed when the command succeeds."""
    import psycopg

    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage.db import connect

    try:
        with database_url(get_settings()) as url, connect(url) as conn:
            yield conn
            conn.commit()
    except psycopg.OperationalError as exc:
        raise _fail(f"database unreachable: {exc}", exit_codes.UNAVAILABLE) from exc


def _read_password(username: str, password_env: str) -> str:
    from ioc.auth.passwords import password_problem

    password = os.environ.get(password_env)
    if password is None:
        password = typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, username=username)
    if problem:
        raise _fail(problem, exit_codes.USAGE)
    return password


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="Lower case letters, digits, '.', '_', '-'.")],
    role: Role,
    unit: Unit = None,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Shown in the pages.")] = None,
    password_env: PasswordEnv = PASSWORD_ENV,
    no_password: Annotated[bool, typer.Option("--no-password", help="Create without a password.")] = False,
) -> None:
    """Create a user; the password comes from $IOC_NEW_USER_PASSWORD or a prompt.

    Example: ioc users create cb-tra-kot --role commune_officer --unit tra-kot --display-name "Cán bộ xã Trà Kót"
    """
    from ioc.auth import repository
    from ioc.auth.passwords import hash_password

    if not USERNAME_RE.match(username):
        raise _fail(f"invalid user name {username!r}: lower case letters, digits, '.', '_', '-'", exit_codes.USAGE)
    if role not in USER_ROLES:
        raise _fail(f"unknown role {role!r}; one of {', '.join(USER_ROLES)}", exit_codes.USAGE)
    if role == "commune_officer" and not unit:
        raise _fail("a commune officer needs --unit", exit_codes.USAGE)
    password_hash = None if no_password else hash_password(_read_password(username, password_env))
    with _connection() as conn:
        try:
            user = repository.create_user(
                conn,
                username=username,
                display_name=display_name or username,
                role=role,
                unit_id=unit,
                password_hash=password_hash,
            )
        except repository.UserExists:
            raise _fail(f"a user named {username!r} already exists") from None
        except repository.UnknownUnit:
            raise _fail(f"no unit {unit!r}") from None
    console.print(f"created {user.role} {user.username}" + (f" of {user.unit_id}" if user.unit_id else ""))


@app.command("list")
def list_(
    role: Annotated[str | None, typer.Option("--role", help="Only this role.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Only this unit.")] = None,
    as_json: AsJson = False,
) -> None:
    """List users (name, role, unit, active, locked, last login)."""
    from ioc.auth import repository

    with _connection() as conn:
        users = repository.list_users(conn, role=role, unit_id=unit)
    if as_json:
        rows = [
            {
                "username": u.username,
                "display_name": u.display_name,
                "role": u.role,
                "unit_id": u.unit_id,
                "active": u.active,
                "locked_until": _iso(u.locked_until),
                "last_login_at": _iso(u.last_login_at),
            }
            for u in users
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("user", "name", "role", "unit", "active", "locked until", "last login")
    for u in users:
        table.add_row(
            u.username,
            u.display_name,
            u.role,
            u.unit_id or "",
            "yes" if u.active else "no",
            _iso(u.locked_until) or "",
            _iso(u.last_login_at) or "",
        )
    console.print(table)


@app.command("disable")
def disable(username: Annotated[str, typer.Argument()]) -> None:
    """Disable a user and end their login sessions."""
    _set_active(username, False)


@app.command("enable")
def enable(username: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled user."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    from ioc.auth import repository
    from ioc.auth.tokens import revoke_user_sessions
    from ioc.clock import SystemClock

    with _connection() as conn:
        user = repository.get_user(conn, username)
        if user is None:
            raise _fail(f"no user named {username!r}")
        repository.set_active(conn, user.id, active)
        if not active:
            revoke_user_sessions(conn, user.id, SystemClock().now(), "disabled")
    console.print(f"{username}: {'enabled' if active else 'disabled'}")


@app.command("set-password")
def set_password(username: Annotated[str, typer.Argument()], password_env: PasswordEnv = PASSWORD_ENV) -> None:
    """Set a user's password, lift a lockout and end their login sessions."""
    from ioc.auth import repository
    from ioc.auth.passwords import hash_password
    from ioc.auth.tokens import revoke_user_sessions
    from ioc.clock import SystemClock

    password_hash = hash_password(_read_password(username, password_env))
    with _connection() as conn:
        user = repository.get_user(conn, username)
        if user is None:
            raise _fail(f"no user named {username!r}")
        repository.set_password(conn, user.id, password_hash)
        revoke_user_sessions(conn, user.id, SystemClock().now(), "password_reset")
    console.print(f"{username}: password set")


# -- API keys -------------------------------------------------------------------------------------------


@api_key_app.command("create")
def api_key_create(
    name: Annotated[str, typer.Argument(help="Unique name, e.g. the device id.")],
    role: Annotated[str, typer.Option("--role", help="device or integration.")] = "device",
    unit: Annotated[str | None, typer.Option("--unit", help="The unit it belongs to; omitted: district.")] = None,
) -> None:
    """Create an API key and print its secret once (send it as X-API-Key).

    Example: ioc users api-key create radio-tra-kot --role device --unit tra-kot
    """
    from ioc.auth import repository
    from ioc.auth.tokens import new_api_key

    if not KEY_NAME_RE.match(name):
        raise _fail(f"invalid key name {name!r}", exit_codes.USAGE)
    if role not in KEY_ROLES:
        raise _fail(f"unknown role {role!r}; one of {', '.join(KEY_ROLES)}", exit_codes.USAGE)
    key = new_api_key()
    with _connection() as conn:
        try:
            repository.create_api_key(conn, name=name, role=role, unit_id=unit, key=key)
        except repository.ApiKeyExists:
            raise _fail(f"an API key named {name!r} already exists") from None
        except repository.UnknownUnit:
            raise _fail(f"no unit {unit!r}") from None
    err_console.print(f"API key {name} ({role}{', ' + unit if unit else ''}); it is shown only once:")
    typer.echo(key)


@api_key_app.command("list")
def api_key_list(as_json: AsJson = False) -> None:
    """List API keys (never their secrets)."""
    from ioc.auth import repository

    with _connection() as conn:
        keys = repository.list_api_keys(conn)
    if as_json:
        rows = [
            {"name": k.name, "role": k.role, "unit_id": k.unit_id, "active": k.active, "created_at": _iso(k.created_at)}
            for k in keys
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("name", "role", "unit", "active", "created")
    for k in keys:
        table.add_row(k.name, k.role, k.unit_id or "", "yes" if k.active else "no", _iso(k.created_at) or "")
    console.print(table)


@api_key_app.command("revoke")
def api_key_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key: it stops working at once."""
    from ioc.auth import repository

    with _connection() as conn:
        if not repository.revoke_api_key(conn, name):
            raise _fail(f"no API key named {name!r}")
    console.print(f"API key {name}: revoked")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
