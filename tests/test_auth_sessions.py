"""Refresh-token rotation, reuse detection, logout, expiry, and sessions ended by an admin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from test_auth_support import AuthWorld, assert_problem, auth_world


@pytest.fixture()
def world(database_url: str) -> Iterator[AuthWorld]:
    with auth_world(database_url) as w:
        yield w


def _refresh(world: AuthWorld, token: str):  # noqa: ANN202
    return world.client.post("/api/auth/refresh", json={"refresh_token": token})


def _me(world: AuthWorld, access_token: str):  # noqa: ANN202
    return world.client.get("/api/auth/me", headers={"Authorization": f"Bearer {access_token}"})


def test_refresh_rotates_and_the_new_pair_works(world: AuthWorld) -> None:
    first = world.login(world.add_user("operator"))
    world.clock.advance(timedelta(minutes=10))
    second = _refresh(world, first["refresh_token"])
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["access_token"] != first["access_token"]
    assert _me(world, pair["access_token"]).status_code == 200
    assert _refresh(world, pair["refresh_token"]).status_code == 200


def test_reusing_a_spent_refresh_token_revokes_the_whole_session(world: AuthWorld) -> None:
    first = world.login(world.add_user("operator"))
    second = _refresh(world, first["refresh_token"]).json()
    reused = assert_problem(_refresh(world, first["refresh_token"]), 401, "invalid-refresh-token", "already used")
    assert reused["reason_code"] == "reused"
    # The legitimate holder's newer token and access token die with the session.
    after = assert_problem(_refresh(world, second["refresh_token"]), 401, "invalid-refresh-token")
    assert after["reason_code"] == "revoked"
    assert_problem(_me(world, second["access_token"]), 401, "invalid-token", "reuse")
    assert world.sql("SELECT count(*) FROM auth_sessions WHERE revoked_reason = 'reuse'")[0][0] >= 1


def test_an_unknown_refresh_token_is_refused(world: AuthWorld) -> None:
    body = assert_problem(_refresh(world, "ioc_rt_made-up"), 401, "invalid-refresh-token", "not recognised")
    assert body["reason_code"] == "unknown"


def test_access_token_expires_after_15_minutes_and_refresh_after_14_idle_days(world: AuthWorld) -> None:
    pair = world.login(world.add_user("leader"))
    world.clock.advance(timedelta(minutes=15))
    assert_problem(_me(world, pair["access_token"]), 401, "invalid-token", "expired")
    pair = _refresh(world, pair["refresh_token"]).json()
    assert _me(world, pair["access_token"]).status_code == 200
    world.clock.advance(timedelta(days=14))
    body = assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token", "expired")
    assert body["reason_code"] == "expired"


def test_a_session_ends_30_days_after_login_whatever_the_rotations(world: AuthWorld) -> None:
    pair = world.login(world.add_user("leader"))
    for _ in range(3):
        world.clock.advance(timedelta(days=9))
        response = _refresh(world, pair["refresh_token"])
        assert response.status_code == 200, response.text
        pair = response.json()
    assert pair["refresh_expires_at"].startswith("2026-03-31")
    world.clock.advance(timedelta(days=3))
    assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token", "expired")


def test_logout_with_the_refresh_token_ends_the_session(world: AuthWorld) -> None:
    pair = world.login(world.add_user("operator"))
    response = world.client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    body = assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token", "ended")
    assert body["reason_code"] == "revoked"
    assert_problem(_me(world, pair["access_token"]), 401, "invalid-token", "logout")
    # Logging out again is harmless.
    again = world.client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 204


def test_logout_with_the_access_token_even_expired(world: AuthWorld) -> None:
    name = world.add_user("operator")
    pair = world.login(name)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert world.client.post("/api/auth/logout", headers=headers).status_code == 204
    assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token")
    pair = world.login(name)
    world.clock.advance(timedelta(hours=1))
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert world.client.post("/api/auth/logout", headers=headers).status_code == 204
    assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token")


def test_logout_without_credentials_is_401(world: AuthWorld) -> None:
    assert_problem(world.client.post("/api/auth/logout"), 401, "not-authenticated")
    bad = world.client.post("/api/auth/logout", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(bad, 401, "invalid-token")


def test_other_sessions_stay_open_after_one_logout(world: AuthWorld) -> None:
    name = world.add_user("operator")
    phone, desk = world.login(name), world.login(name)
    world.client.post("/api/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert _me(world, desk["access_token"]).status_code == 200


def test_disabling_a_user_ends_their_sessions_at_once(world: AuthWorld) -> None:
    admin = world.bearer(world.add_user("admin"))
    name = world.add_user("operator")
    pair = world.login(name)
    assert world.client.post(f"/api/users/{name}/disable", headers=admin).json()["active"] is False
    assert_problem(_me(world, pair["access_token"]), 401, "invalid-token", "ended (disabled)")
    assert_problem(_refresh(world, pair["refresh_token"]), 401, "invalid-refresh-token")
    assert world.client.post(f"/api/users/{name}/enable", headers=admin).json()["active"] is True
    assert world.login(name)["user"]["username"] == name


def test_password_reset_ends_sessions(world: AuthWorld) -> None:
    # (There is no lockout to lift any more: failures slow down the guessing address only, issue #15.)
    admin = world.bearer(world.add_user("admin"))
    name = world.add_user("operator")
    pair = world.login(name)
    for _ in range(3):
        world.client.post("/api/auth/login", json={"username": name, "password": "wrong password!"})
    new_password = "một mật khẩu mới"
    response = world.client.put(f"/api/users/{name}/password", json={"password": new_password}, headers=admin)
    assert response.status_code == 204, response.text
    assert_problem(_me(world, pair["access_token"]), 401, "invalid-token", "password_reset")
    assert world.login(name, new_password)["user"]["username"] == name


def test_a_changed_role_invalidates_tokens_issued_before(world: AuthWorld) -> None:
    name = world.add_user("operator")
    pair = world.login(name)
    world.sql("UPDATE users SET role = 'leader' WHERE username = %s", (name,))
    assert_problem(_me(world, pair["access_token"]), 401, "invalid-token", "role or unit has changed")


def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(world: AuthWorld) -> None:
    name = world.add_user("operator")
    other, this = world.login(name), world.login(name)
    headers = {"Authorization": f"Bearer {this['access_token']}"}
    wrong = world.client.post(
        "/api/auth/password",
        headers=headers,
        json={"current_password": "nope nope nope", "new_password": "một mật khẩu mới"},
    )
    assert_problem(wrong, 403, "forbidden", "current password is wrong")
    short = world.client.post(
        "/api/auth/password",
        headers=headers,
        json={"current_password": "correct horse battery", "new_password": "short"},
    )
    assert_problem(short, 422, "validation-error", "at least 12")
    ok = world.client.post(
        "/api/auth/password",
        headers=headers,
        json={"current_password": "correct horse battery", "new_password": "một mật khẩu mới"},
    )
    assert ok.status_code == 204, ok.text
    assert _me(world, this["access_token"]).status_code == 200
    assert_problem(_me(world, other["access_token"]), 401, "invalid-token")
    assert world.login(name, "một mật khẩu mới")
