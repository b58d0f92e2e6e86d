"""Login over HTTP: success, refusals as problem+json, throttling (never a lock) under a manual clock."""

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


def test_failures_never_lock_the_account_they_slow_down_their_address(world: AuthWorld) -> None:
    """Replaces the old "five failures lock the account" (issue #15: anyone could lock anyone out)."""
    name = world.add_user("operator")
    for _ in range(30):
        assert_problem(_login(world, name, "wrong password!"), 401, "invalid-credentials")
    # The owner, from another address, is not affected at all.
    assert world.client_from("192.0.2.77").post(
        "/api/auth/login", json={"username": name, "password": PASSWORD}).status_code == 200  # fmt: skip
    # The guessing address is slowed down for this account, even with the right password, with the
    # same answer as a wrong password (nothing tells it that it is throttled)...
    throttled = assert_problem(_login(world, name, PASSWORD), 401, "invalid-credentials")
    assert throttled["detail"] == "user name or password is wrong" and "retry-after" not in throttled
    # ... and only for a while: after the delay its next attempt is checked again.
    world.clock.advance(timedelta(minutes=16))
    assert _login(world, name, PASSWORD).status_code == 200


def test_delays_grow_with_each_failure_past_the_free_ones(world: AuthWorld) -> None:
    from ioc.auth.throttle import ThrottlePolicy

    policy = ThrottlePolicy()
    name = world.add_user("operator")
    delays = []
    for _ in range(policy.free_per_pair + 4):
        _login(world, name, "wrong password!")
        row = world.sql("SELECT blocked_until FROM login_throttle WHERE key LIKE %s", (f"pair:%|{name}",))
        delays.append((row[0][0] - world.clock.now()).total_seconds() if row and row[0][0] else 0.0)
        world.clock.advance(timedelta(minutes=20))  # past any delay: each attempt is really checked
    assert delays == [0.0] * policy.free_per_pair + [1.0, 2.0, 4.0, 8.0]


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


def test_200_failures_from_one_address_over_17_accounts_lock_no_one_and_raise_an_alert(world: AuthWorld) -> None:
    """Acceptance (#15): 200 failed logins from one address over 17 accounts; every account still
    logs in with its password from another address; failures are audited; an alert is raised."""
    names = [world.add_user("commune_officer" if i % 2 else "operator", unit=world.add_unit(unique("xa")) if i % 2
                            else None) for i in range(17)]  # fmt: skip
    answers = set()
    for i in range(200):
        response = _login(world, names[i % 17], f"guess number {i}")
        answers.add((response.status_code, response.json()["detail"]))
        world.clock.advance(timedelta(seconds=1))
    assert answers == {(401, "user name or password is wrong")}
    elsewhere = world.client_from("198.51.100.9")
    for name in names:
        response = elsewhere.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, (name, response.text)
    audited = world.sql("SELECT count(*), count(DISTINCT username) FROM login_failures WHERE username = ANY(%s)",
                        (names,))  # fmt: skip
    assert audited[0] == (200, 17)
    alerts = world.sql("SELECT title, evidence FROM alerts WHERE kind = 'security.brute_force'"
                       " AND evidence->>'kind' = 'address' AND evidence->>'who' = %s",
                       (world.client_address,))  # fmt: skip
    assert len(alerts) == 1 and "Dò mật khẩu" in alerts[0][0], alerts


def test_unknown_user_wrong_password_and_throttled_answers_are_indistinguishable(world: AuthWorld) -> None:
    name = world.add_user("operator")

    def shape(response) -> tuple:  # noqa: ANN001
        headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length")}
        return response.status_code, headers, response.json() | {"instance": None}

    wrong = shape(_login(world, name, "wrong password!"))
    unknown = shape(_login(world, unique("nobody"), "wrong password!"))
    for _ in range(25):
        _login(world, unique("nobody"), "wrong password!")  # the address is now slowed down
    throttled = shape(_login(world, name, PASSWORD))
    assert wrong == unknown == throttled


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


def test_concurrent_guesses_are_counted_exactly_and_never_lock(world: AuthWorld) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ioc.auth import repository

    name = world.add_user("operator")
    now = world.clock.now()

    def guess(_: int) -> repository.LoginOutcome:
        return repository.authenticate(world.pool.connection, name, "wrong password!", now).outcome

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(guess, range(12)))
    assert outcomes == [repository.LoginOutcome.BAD_CREDENTIALS] * 12
    assert world.sql("SELECT failed_logins FROM users WHERE username = %s", (name,)) == [(12,)]
    assert _login(world, name, PASSWORD).status_code == 200


def test_old_throttle_counts_are_forgotten(world: AuthWorld) -> None:
    from ioc.auth import throttle

    name = world.add_user("operator")
    for _ in range(8):
        _login(world, name, "wrong password!")
        world.clock.advance(timedelta(minutes=1))  # past each delay: every attempt is checked and counted
    key = f"pair:{world.client_address}|{name}"
    assert world.sql("SELECT failures FROM login_throttle WHERE key = %s", (key,)) == [(8,)]
    world.clock.advance(timedelta(hours=2))
    with world.pool.connection() as conn:
        throttle.forget_old(conn, world.clock.now(), throttle.ThrottlePolicy(), keep_audit=timedelta(days=90))
    assert world.sql("SELECT failures FROM login_throttle WHERE key = %s", (key,)) == []
    assert world.sql("SELECT count(*) FROM login_failures WHERE username = %s", (name,)) == [(8,)]  # audit kept


def test_the_throttle_holds_across_api_replicas(world: AuthWorld, database_url: str) -> None:
    """Two API processes on one database (two apps, two pools): failures counted by one slow the
    address down on the other, because the throttle lives in PostgreSQL, not in a process."""
    name = world.add_user("operator")
    for _ in range(25):
        _login(world, name, "wrong password!")
    with auth_world(database_url) as replica:
        same_address = replica.client_from(world.client_address)
        refused = same_address.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert_problem(refused, 401, "invalid-credentials")
        elsewhere = replica.client_from("203.0.113.50")
        assert elsewhere.post("/api/auth/login", json={"username": name, "password": PASSWORD}).status_code == 200


def test_one_account_failing_from_many_addresses_raises_an_alert(world: AuthWorld) -> None:
    name = world.add_user("operator")
    for i in range(10):
        world.client_from(f"198.18.0.{i + 1}").post("/api/auth/login", json={"username": name, "password": "guess!"})
    alerts = world.sql("SELECT evidence FROM alerts WHERE kind = 'security.brute_force' AND evidence->>'who' = %s",
                       (name,))  # fmt: skip
    assert len(alerts) == 1 and alerts[0][0]["kind"] == "account" and alerts[0][0]["spread"] == 10
    # Still no lock: the owner logs in.
    assert _login(world, name, PASSWORD).status_code == 200
