"""Who may do what: API keys, roles, commune officer scope, the users API, websockets, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from test_auth_support import PASSWORD, AuthWorld, assert_problem, auth_world, fast_hashing, unique
from typer.testing import CliRunner

from ioc.auth import deps, passwords, repository


@pytest.fixture()
def world(database_url: str) -> Iterator[AuthWorld]:
    with auth_world(database_url) as w:
        yield w


@pytest.fixture()
def tree(world: AuthWorld) -> dict[str, str]:
    """district > commune A (> hamlet A1), commune B; commune C merged into A."""
    d = world.add_unit(unique("huyen"))
    a = world.add_unit(unique("xa-a"), parent=d)
    a1 = world.add_unit(unique("thon-a1"), parent=a)
    b = world.add_unit(unique("xa-b"), parent=d)
    c = world.add_unit(unique("xa-c"), parent=d, successor=a)
    return {"d": d, "a": a, "a1": a1, "b": b, "c": c}


# -- authentication -------------------------------------------------------------------------------------


def test_no_credentials_is_401_with_a_challenge(world: AuthWorld) -> None:
    response = world.client.get("/api/auth/me")
    assert_problem(response, 401, "not-authenticated", "Bearer")
    assert response.headers["www-authenticate"].startswith("Bearer")
    basic = world.client.get("/api/auth/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert_problem(basic, 401, "not-authenticated", "must be `Bearer")
    forged = world.client.get("/api/auth/me", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."})
    assert_problem(forged, 401, "invalid-token")
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]


def test_api_key_authenticates_a_device_with_its_unit_scope(world: AuthWorld, tree: dict[str, str]) -> None:
    _, key = world.add_api_key("device", unit=tree["a"])
    me = world.client.get("/api/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["kind"], body["role"], body["unit_id"]) == ("api_key", "device", tree["a"])
    assert body["units"] == sorted([tree["a"], tree["a1"], tree["c"]])
    assert_problem(world.client.get("/api/auth/me", headers={"X-API-Key": key + "x"}), 401, "invalid-api-key")
    both = {"X-API-Key": key, "Authorization": "Bearer abc"}
    assert_problem(world.client.get("/api/auth/me", headers=both), 401, "not-authenticated", "not both")


def test_api_keys_are_shown_once_listed_without_secret_and_revocable(world: AuthWorld, tree: dict[str, str]) -> None:
    admin = world.bearer(world.add_user("admin"))
    name = unique("radio")
    created = world.client.post(
        "/api/api-keys", json={"name": name, "role": "device", "unit_id": tree["b"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("ioc_ak_")
    listed = world.client.get("/api/api-keys", headers=admin)
    assert key not in listed.text and name in listed.text
    stored = world.sql("SELECT key_hash FROM api_keys WHERE name = %s", (name,))[0][0]
    assert key not in stored and len(stored) == 64
    assert world.client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 200
    again = world.client.post("/api/api-keys", json={"name": name, "role": "device"}, headers=admin)
    assert_problem(again, 409, "conflict", "already exists")
    assert world.client.delete(f"/api/api-keys/{name}", headers=admin).status_code == 204
    assert_problem(world.client.get("/api/auth/me", headers={"X-API-Key": key}), 401, "invalid-api-key")
    assert_problem(world.client.delete(f"/api/api-keys/{unique('none')}", headers=admin), 404, "not-found")
    unknown_unit = world.client.post(
        "/api/api-keys", json={"name": unique("k"), "role": "integration", "unit_id": "no-such-unit"}, headers=admin
    )
    assert_problem(unknown_unit, 422, "validation-error", "no unit")


# -- roles ----------------------------------------------------------------------------------------------


ADMIN_ROUTES = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"username": "zz-new", "display_name": "X", "role": "operator"}),
    ("GET", "/api/users/admin", None),
    ("POST", "/api/users/admin/disable", None),
    ("POST", "/api/users/admin/enable", None),
    ("PUT", "/api/users/admin/password", {"password": "một mật khẩu mới"}),
    ("GET", "/api/api-keys", None),
    ("POST", "/api/api-keys", {"name": "zz-key", "role": "device"}),
    ("DELETE", "/api/api-keys/zz-key", None),
]


@pytest.mark.parametrize("role", ["operator", "leader", "commune_officer", "device", "integration"])
def test_only_admins_manage_users_and_keys(world: AuthWorld, tree: dict[str, str], role: str) -> None:
    if role in ("device", "integration"):
        headers = {"X-API-Key": world.add_api_key(role)[1]}
    else:
        unit = tree["a"] if role == "commune_officer" else None
        headers = world.bearer(world.add_user(role, unit=unit))
    for method, path, body in ADMIN_ROUTES:
        response = world.client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "forbidden", f"role {role!r} may not do this; allowed: admin")
        assert_problem(world.client.request(method, path, json=body), 401, "not-authenticated")


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("operator", 200), ("leader", 403), ("commune_officer", 403), ("device", 403)],
)
def test_require_roles(world: AuthWorld, tree: dict[str, str], role: str, status: int) -> None:
    if role == "device":
        headers = {"X-API-Key": world.add_api_key(role)[1]}
    else:
        headers = world.bearer(world.add_user(role, unit=tree["a"] if role == "commune_officer" else None))
    response = world.client.get("/probe/operators-only", headers=headers)
    assert response.status_code == status, response.text


# -- commune officer scope ------------------------------------------------------------------------------


def test_commune_officer_sees_its_unit_its_descendants_and_merged_units_only(
    world: AuthWorld, tree: dict[str, str]
) -> None:
    officer = world.bearer(world.add_user("commune_officer", unit=tree["a"]))
    operator = world.bearer(world.add_user("operator"))
    for unit in ("a", "a1", "c"):
        assert world.client.get(f"/probe/units/{tree[unit]}", headers=officer).status_code == 200
    for unit in ("b", "d"):
        assert_problem(world.client.get(f"/probe/units/{tree[unit]}", headers=officer), 404, "not-found")
    for unit in tree.values():
        assert world.client.get(f"/probe/units/{unit}", headers=operator).status_code == 200
    me = world.client.get("/api/auth/me", headers=officer).json()
    assert me["units"] == sorted([tree["a"], tree["a1"], tree["c"]]) and me["district_wide"] is False
    assert world.client.get("/api/auth/me", headers=operator).json()["units"] is None


def test_officer_of_a_hamlet_does_not_see_its_parent_commune(world: AuthWorld, tree: dict[str, str]) -> None:
    officer = world.bearer(world.add_user("commune_officer", unit=tree["a1"]))
    assert world.client.get(f"/probe/units/{tree['a1']}", headers=officer).status_code == 200
    assert world.client.get(f"/probe/units/{tree['a']}", headers=officer).status_code == 404


# -- users API ------------------------------------------------------------------------------------------


def test_admin_creates_lists_and_validates_users(world: AuthWorld, tree: dict[str, str]) -> None:
    admin_name = world.add_user("admin")
    admin = world.bearer(admin_name)
    name = unique("cb")
    body = {
        "username": name,
        "display_name": "Cán bộ",
        "role": "commune_officer",
        "unit_id": tree["b"],
        "password": "một mật khẩu đủ dài",
    }
    created = world.client.post("/api/users", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["unit_id"] == tree["b"] and "password" not in created.text
    assert world.login(name, "một mật khẩu đủ dài")["user"]["units"] == [tree["b"]]
    assert_problem(world.client.post("/api/users", json=body, headers=admin), 409, "conflict", "already exists")
    listed = world.client.get("/api/users", params={"unit": tree["b"]}, headers=admin).json()
    assert [u["username"] for u in listed] == [name]
    weak = world.client.post("/api/users", json={**body, "username": unique("cb"), "password": "short"}, headers=admin)
    problem = assert_problem(weak, 422, "validation-error", "at least 12")
    assert problem["errors"][0]["pointer"] == "#/password"
    no_unit = world.client.post("/api/users", json={**body, "username": unique("cb"), "unit_id": None}, headers=admin)
    assert_problem(no_unit, 422, "validation-error", "belongs to a unit")
    bad_name = world.client.post("/api/users", json={**body, "username": "Not Valid"}, headers=admin)
    assert_problem(bad_name, 422, "validation-error", "username")
    assert_problem(world.client.post(f"/api/users/{admin_name}/disable", headers=admin), 409, "conflict", "own")
    assert_problem(world.client.get("/api/users/nobody-here", headers=admin), 404, "not-found")


def test_openapi_documents_auth_with_problem_examples(world: AuthWorld) -> None:
    from ioc.http.errors import document_problems_in_openapi

    document_problems_in_openapi(world.client.app)  # type: ignore[arg-type]
    schema = world.client.get("/openapi.json").json()
    login = schema["paths"]["/api/auth/login"]["post"]
    # No 423/429 any more: a throttled login answers the same 401 as a wrong password (issue #15).
    assert set(login["responses"]) >= {"200", "401", "422"}
    assert not set(login["responses"]) & {"423", "429"}
    example = login["responses"]["401"]["content"]["application/problem+json"]["example"]
    assert example["type"] == "/problems/invalid-credentials"
    assert {"accessToken", "apiKey"} <= set(schema["components"]["securitySchemes"])
    assert schema["components"]["schemas"]["LoginRequest"]["examples"]


# -- websockets -----------------------------------------------------------------------------------------


def test_websocket_takes_the_token_from_the_query(world: AuthWorld, tree: dict[str, str]) -> None:
    name = world.add_user("commune_officer", unit=tree["a"])
    token = world.login(name)["access_token"]
    with world.client.websocket_connect(f"/probe/ws?access_token={token}") as ws:
        hello = ws.receive_json()
    assert hello["user"] == name and tree["c"] in hello["units"] and tree["b"] not in hello["units"]


def test_websocket_takes_the_token_from_the_first_message(world: AuthWorld) -> None:
    name = world.add_user("operator")
    token = world.login(name)["access_token"]
    with world.client.websocket_connect("/probe/ws") as ws:
        ws.send_json({"type": "auth", "access_token": token})
        assert ws.receive_json()["user"] == name


def test_websocket_refuses_bad_or_missing_tokens(world: AuthWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    with world.client.websocket_connect("/probe/ws?access_token=garbage") as ws:
        assert "access token rejected" in ws.receive_json()["reason"]
    with world.client.websocket_connect("/probe/ws") as ws:
        ws.send_json({"type": "hello"})
        assert "first message must be" in ws.receive_json()["reason"]
    monkeypatch.setattr(deps, "WEBSOCKET_AUTH_TIMEOUT_S", 0.05)
    with world.client.websocket_connect("/probe/ws") as ws:
        assert "no auth message" in ws.receive_json()["reason"]


# -- command line ---------------------------------------------------------------------------------------


def test_cli_creates_users_and_api_keys(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ioc.cli.users_cmd import app
    from ioc.settings import get_settings

    monkeypatch.setenv("IOC_DATABASE_URL", database_url)
    monkeypatch.setenv("IOC_NEW_USER_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    runner = CliRunner()
    name = unique("op")
    try:
        with fast_hashing():
            result = runner.invoke(app, ["create", name, "--role", "operator", "--display-name", "Trực ban"])
            assert result.exit_code == 0, result.output
            again = runner.invoke(app, ["create", name, "--role", "operator"])
            assert again.exit_code == 1 and "already exists" in again.output
            officer = runner.invoke(app, ["create", unique("cb"), "--role", "commune_officer"])
            assert officer.exit_code == 2 and "needs --unit" in officer.output
            monkeypatch.setenv("IOC_NEW_USER_PASSWORD", "short")
            weak = runner.invoke(app, ["create", unique("op"), "--role", "operator"])
            assert weak.exit_code == 2 and "at least 12" in weak.output
            listed = runner.invoke(app, ["list", "--role", "operator", "--json"])
            assert listed.exit_code == 0, listed.output
            assert name in [u["username"] for u in json.loads(listed.stdout)]
            key_name = unique("cam")
            created = runner.invoke(app, ["api-key", "create", key_name, "--role", "device"])
            assert created.exit_code == 0, created.output
            key = created.stdout.strip().splitlines()[-1]
            with psycopg.connect(database_url) as conn:
                principal = repository.verify_api_key(conn, key)
                stored = conn.execute("SELECT password_hash FROM users WHERE username = %s", (name,)).fetchone()
            assert principal is not None and principal.username == key_name and principal.role == "device"
            assert stored is not None and passwords.verify_password(stored[0], PASSWORD)
            assert runner.invoke(app, ["api-key", "revoke", key_name]).exit_code == 0
    finally:
        get_settings.cache_clear()
