"""Shared fixtures: a real PostgreSQL and a real MQTT broker for the whole test session.

The machine's services are used when ``IOC_TEST_DATABASE_URL`` / ``IOC_TEST_MQTT_URL`` are set;
otherwise the embedded ones are started (embedded PostgreSQL in a temporary directory, rumqttd on a
free port). Each test session owns a fresh database (``ioc_test_<random>``), dropped at the end, so
runs never see each other's data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

# Fast, weak argon2 parameters for the test users (never the production defaults).
os.environ.setdefault("IOC_ARGON2_PROFILE", "test-insecure")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ioc.embedded.broker import EmbeddedBroker  # noqa: E402
from ioc.embedded.postgres import EmbeddedPostgres  # noqa: E402
from ioc.storage.db import with_database  # noqa: E402
from ioc.storage.migrate import migrate  # noqa: E402


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a database on the test server with rights to create databases."""
    external = os.environ.get("IOC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: pytest prunes old basetemps at start, which would pull the data
    # directory from under a server of a test session still running beside this one.
    home = Path(tempfile.mkdtemp(prefix="ioc-test-pg-"))
    server = EmbeddedPostgres(home / "data").start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def database_factory(pg_admin_url: str) -> Iterator[Callable[..., str]]:
    """Make fresh databases on the test server: ``database_factory(migrated=True) -> url``.

    Every database made is dropped when the session ends.
    """
    made: list[str] = []

    def make(migrated: bool = True) -> str:
        name = f"ioc_test_{secrets.token_hex(4)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        url = with_database(pg_admin_url, name)
        if migrated:
            migrate(url)
        return url

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(database_factory: Callable[..., str]) -> str:
    """A migrated database shared by the session's tests (tests keep to their own rows)."""
    return database_factory(migrated=True)


@pytest.fixture()
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database; the test's transaction is rolled back afterwards."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn
        conn.rollback()


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an MQTT 5 broker: the machine's (IOC_TEST_MQTT_URL) or an embedded rumqttd."""
    external = os.environ.get("IOC_TEST_MQTT_URL")
    if external:
        yield external
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("broker")).start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt_share_group_prefix() -> str:
    """Prefix for a service's shared-subscription group name on the test broker, or "" for an
    exclusive subscription: the embedded rumqttd loses messages on shared subscriptions (measured:
    a second QoS 1 message on a topic never reached the group's only member; docs/broker.md), so
    services under test subscribe exclusively there, as `ioc up` runs them on it."""
    return "grp" if os.environ.get("IOC_TEST_MQTT_URL") else ""


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: their session-wide running system (API, ingest and a detector decoding
    video) would otherwise load the 2 cores under every other test that follows them."""
    items.sort(key=lambda item: "browser" in item.keywords)
