"""Login over HTTP: success, refusals as problem+json, lockout under a manual clock, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from test_auth_support import PASSWORD, AuthWorld, assert_problem, auth_world, unique


@pytest.fixture()
def world(database_url: str) -> Iterator[AuthWorld]:
    with auth_world(database_url) as w:
        yield w


def _login(world: AuthWorld, username: str, password: str):  # noqa: ANN202
    return world.client.post("/api/auth/login", json={"username": username, "password": password})


def test_login_answers_tokens_and_the_user(world: AuthWorld) -> None:
    unit = world.add_unit(unique("xa"))
    name = world.add_user("commune_officer", unit=unit)
    response = _login(world, name.upper() + " ", PASSWORD)  # user names are case-insensitive
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"].startswith("ioc_rt_")
    assert body["user"] == {
        "username": name,
        "display_name": f"Người dùng {name}",
        "role": "commune_officer",
        "unit_id": unit,
        "kind": "user",
        "units": [unit],
        "district_wide": False,
        "last_login_at": body["user"]["last_login_at"],
    }
    me = world.client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == name
    assert me.json()["last_login_at"] is not None


def test_wrong_password_and_unknown_user_get_the_same_problem(world: AuthWorld) -> None:
    name = world.add_user("operator")
    wrong = assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")
    unknown = assert_problem(_login(world, unique("nobody"), "wrong password!"), 401, "invalid-credentials")
    no_password = assert_problem(
        _login(world, world.add_user("leader", password=None), PASSWORD), 401, "invalid-credentials"
    )
    assert wrong["detail"] == unknown["detail"] == no_password["detail"] == "user name or password is wrong"
    assert wrong["title"] == "Invalid user name or password"


def test_five_failures_lock_the_account_until_the_lock_expires(world: AuthWorld) -> None:
    name = world.add_user("operator")
    for _ in range(4):
        assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")
        world.clock.advance(timedelta(seconds=30))
    locked = _login(world, name, "wrong password!")
    body = assert_problem(locked, 423, "account-locked", "locked")
    assert body["retry_after_s"] == 900 and locked.headers["retry-after"] == "900"
    world.clock.advance(timedelta(minutes=10))
    still = assert_problem(_login(world, name, PASSWORD), 423, "account-locked")  # even the right password
    assert still["retry_after_s"] == 300
    world.clock.advance(timedelta(minutes=5))
    assert _login(world, name, PASSWORD).status_code == 200


def test_failures_spread_beyond_the_window_do_not_lock(world: AuthWorld) -> None:
    name = world.add_user("operator")
    for _ in range(8):
        assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")
        world.clock.advance(timedelta(minutes=16))
    assert _login(world, name, PASSWORD).status_code == 200


def test_a_success_resets_the_failure_count(world: AuthWorld) -> None:
    name = world.add_user("operator")
    for _ in range(4):
        _login(world, name, "wrong password!")
    assert _login(world, name, PASSWORD).status_code == 200
    for _ in range(4):
        assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")


def test_disabled_account_is_told_so_only_with_the_right_password(world: AuthWorld) -> None:
    name = world.add_user("operator")
    world.sql("UPDATE users SET active = false WHERE username = %s", (name,))
    assert_problem(_login(world, name, PASSWORD), 403, "account-disabled", "disabled")
    assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")


def test_login_is_rate_limited_per_user_name(world: AuthWorld) -> None:
    name = unique("ghost")
    for _ in range(10):
        assert_problem(_login(world, name, "guess guess guess"), 401, "invalid-credentials")
    limited = _login(world, name, "guess guess guess")
    body = assert_problem(limited, 429, "rate-limited", "for this user name")
    assert int(limited.headers["retry-after"]) == body["retry_after_s"] == 30
    world.clock.advance(timedelta(seconds=30))
    assert _login(world, name, "guess guess guess").status_code == 401


def test_login_is_rate_limited_per_address(world: AuthWorld) -> None:
    for _ in range(20):
        _login(world, unique("ghost"), "guess guess guess")
    assert_problem(_login(world, unique("ghost"), "guess guess guess"), 429, "rate-limited", "from this address")


def test_validation_errors_point_at_the_field_and_never_echo_the_password(world: AuthWorld) -> None:
    response = world.client.post("/api/auth/login", json={"username": "x"})
    body = assert_problem(response, 422, "validation-error", "password")
    assert body["errors"] == [
        {"detail": "Field required", "location": "body", "pointer": "#/password", "code": "missing"}
    ]
    secret = "s3cret-" + "z" * 2000
    response = world.client.post("/api/auth/login", json={"username": "x", "password": secret})
    assert response.status_code == 422 and secret not in response.text


def test_without_a_secret_key_auth_routes_refuse_with_a_clear_reason(database_url: str) -> None:
    with auth_world(database_url, secret=None) as world:
        body = assert_problem(_login(world, "admin", PASSWORD), 503, "auth-not-configured", "IOC_SECRET_KEY")
        assert "is not set" in body["detail"]
        assert_problem(world.client.get("/api/auth/me"), 503, "auth-not-configured")


def test_concurrent_guesses_are_counted_exactly(world: AuthWorld) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ioc.auth import repository

    name = world.add_user("operator")
    policy = repository.LockoutPolicy()
    now = world.clock.now()

    def guess(_: int) -> repository.LoginOutcome:
        return repository.authenticate(world.pool.connection, name, "wrong password!", now, policy).outcome

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(guess, range(policy.max_failures)))
    assert outcomes.count(repository.LoginOutcome.LOCKED) == 1
    assert outcomes.count(repository.LoginOutcome.BAD_CREDENTIALS) == policy.max_failures - 1
    assert_problem(_login(world, name, PASSWORD), 423, "account-locked")
