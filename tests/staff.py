"""Staff accounts for tests of the real app (`create_app`): make a user, log in, get a token."""

from __future__ import annotations

import secrets

import psycopg
from fastapi.testclient import TestClient

from ioc.auth import passwords, repository
from ioc.settings import Settings

SECRET = "test-secret-key-" + "y" * 40
PASSWORD = "mật khẩu đủ dài 2026"


def app_settings(database_url: str, mqtt_url: str, **overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=database_url, mqtt_url=mqtt_url, secret_key=SECRET, **overrides)  # type: ignore[call-arg]


def district_app_settings(database_url: str, mqtt_url: str, var_dir: object, **overrides: object) -> Settings:
    """Settings for the real app over a migrated database loaded with the sample district (no seed
    passwords): what the module fixtures of the HTTP tests start from."""
    from ioc.district.bootstrap import load_district_into

    settings = app_settings(database_url, mqtt_url, var_dir=var_dir, **overrides)
    load_district_into(database_url, settings, environ={})
    return settings


def add_unit(database_url: str, unit_id: str, parent: str | None = None) -> str:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO units (id, name, name_search, level, parent_id) VALUES (%s, %s, %s, 'commune', %s)"
            " ON CONFLICT DO NOTHING",
            (unit_id, unit_id, unit_id, parent),
        )
    return unit_id


def token(client: TestClient, database_url: str, role: str = "operator", unit: str | None = None) -> str:
    """A fresh user with ``role`` (and ``unit``), logged in through the API: its access token."""
    username = f"{role.replace('_', '-')}-{secrets.token_hex(3)}"
    with psycopg.connect(database_url) as conn:
        repository.create_user(conn, username=username, display_name=username, role=role, unit_id=unit,
                               password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]
