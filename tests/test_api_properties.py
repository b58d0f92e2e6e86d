"""Property-based run of the whole HTTP API from its own OpenAPI document (Schemathesis 4 on
Hypothesis), against the real app and a real PostgreSQL.

Every operation gets generated requests, valid and invalid, each sent anonymously and with every
role (the four staff roles with a bearer token, the two API-key roles). Every answer must be: not a
5xx; a status the OpenAPI lists for the operation; of a documented content type; matching the
documented schema. The run is bounded (``IOC_PROPERTY_EXAMPLES`` examples per operation, 80 by
default: about two minutes on two cores); raise it for a longer hunt.

A few operations would end the run's own sessions (log out, change the callers' passwords, disable
or delete users, revoke keys): they are sent only anonymously, where they must be refused cleanly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks as st_checks
from served import ServedApp
from staff import PASSWORD, app_settings

from ioc.auth import repository
from ioc.auth.tokens import new_api_key
from ioc.district.bootstrap import load_district_into
from ioc.http.app import create_app

EXAMPLES = int(os.environ.get("IOC_PROPERTY_EXAMPLES", "80"))
USER_ROLES = ("admin", "operator", "leader", "commune_officer")
KEY_ROLES = ("device", "integration")
#: (method, path) sent only anonymously: with a role they would end the run's own sessions.
SESSION_ENDING = {
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/users/{user_id}/disable"),
    ("POST", "/api/users/{user_id}/password"),
    ("DELETE", "/api/users/{user_id}"),
    ("DELETE", "/api/api-keys/{name}"),
    ("PUT", "/api/users/{user_id}"),
}
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]

@pytest.fixture(scope="module")
def world(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory):
    import requests

    url = database_factory(migrated=True)
    settings_ = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"), public_submit_burst=100_000,
                             public_submit_per_min=100_000)  # fmt: skip
    load_district_into(url, settings_, environ={})
    app = create_app(settings_)
    with ServedApp(app) as served, requests.Session() as session:
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for role in USER_ROLES:
            unit = "tra-kot" if role == "commune_officer" else None
            headers[role] = {"Authorization": f"Bearer {_token(session, served.url, url, role, unit)}"}
        with psycopg.connect(url) as conn:
            for role in KEY_ROLES:
                key = new_api_key()
                repository.create_api_key(conn, name=f"prop-{role}-{secrets.token_hex(3)}", role=role,
                                          unit_id="tra-kot" if role == "device" else None, key=key)  # fmt: skip
                headers[role] = {"X-API-Key": key}
        yield {"url": served.url, "session": session, "headers": headers}


def _token(session: Any, base: str, database_url: str, role: str, unit: str | None) -> str:
    from ioc.auth import passwords

    username = f"prop-{role.replace('_', '-')}-{secrets.token_hex(3)}"
    with psycopg.connect(database_url) as conn:
        repository.create_user(conn, username=username, display_name=username, role=role, unit_id=unit,
                               password_hash=passwords.hash_password(PASSWORD))  # fmt: skip
    response = session.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _operations() -> dict[str, Any]:
    """Every operation of the document the app serves (built without a database: only the routes)."""
    from ioc.settings import Settings

    app = create_app(Settings(_env_file=None, database_url="postgresql://unused/x", secret_key="x" * 40))  # type: ignore[call-arg]
    loaded = schemathesis.openapi.from_dict(app.openapi())
    return {op.label: op for op in (result.ok() for result in loaded.get_all_operations())}


OPERATIONS = _operations()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_answers_as_documented_for_every_role(label: str, world: dict[str, Any]) -> None:
    operation = OPERATIONS[label]
    key = (operation.method.upper(), operation.path)
    roles = ["anonymous"] if key in SESSION_ENDING else list(world["headers"])

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=True, database=None)  # fmt: skip
    def run(case: Any) -> None:
        for role in roles:
            headers = {**(case.headers or {}), **world["headers"][role]}
            response = case.call(base_url=world["url"], session=world["session"], headers=headers, timeout=60)
            case.validate_response(response, checks=CHECKS)

    run()


def test_every_documented_error_status_is_problem_json_with_an_example_that_validates() -> None:
    """The OpenAPI lists, for every operation, the errors it may answer (401/403 where access is
    checked, 404/400 with path parameters, 413 with a body, 422, 503) as problem+json, and each
    example validates against its schema (JSON Schema 2020-12, references into the document)."""
    import jsonschema_rs

    from ioc.settings import Settings

    app = create_app(Settings(_env_file=None, database_url="postgresql://unused/x", secret_key="x" * 40))  # type: ignore[call-arg]
    document = app.openapi()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "503" in responses or path in ("/healthz", "/metrics"), (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) < 400:
                    continue
                content = response.get("content", {})
                assert "application/problem+json" in content, (method, path, status)
                for media, body in content.items():
                    if "example" not in body or "schema" not in body:
                        continue
                    schema = {**body["schema"], "components": document["components"]}
                    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body["example"])]
                    assert not errors, (method, path, status, media, errors)
                    checked += 1
    assert checked > 200
