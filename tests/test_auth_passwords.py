"""Password hashing (Argon2id), the password policy, access tokens and the login token buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from test_auth_support import SECRET, fast_hashing

from ioc.auth import passwords
from ioc.auth.principal import Principal
from ioc.auth.ratelimit import BucketPolicy, LoginRateLimiter, TokenBuckets
from ioc.auth.tokens import AccessTokens, AuthConfigError, InvalidToken


@pytest.fixture(autouse=True)
def _fast() -> object:
    with fast_hashing():
        yield


def test_hash_verifies_only_the_right_password() -> None:
    stored = passwords.hash_password("mật khẩu đủ dài")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "mật khẩu đủ dài")
    assert not passwords.verify_password(stored, "mat khau du dai")
    assert not passwords.verify_password("not a hash", "mật khẩu đủ dài")
    assert not passwords.verify_password(stored, "x" * (passwords.MAX_PASSWORD_LENGTH + 1))


def test_user_without_password_costs_a_verification_and_never_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    real = passwords._hasher
    calls: list[str] = []

    class Spy:
        def verify(self, hash_: str, password: str) -> bool:
            calls.append(hash_)
            return real.verify(hash_, password)

        def hash(self, password: str) -> str:
            return real.hash(password)

    monkeypatch.setattr(passwords, "_hasher", Spy())
    dummy_password = "not a password: used to spend the same time on unknown users"
    assert not passwords.verify_password(None, dummy_password)
    assert not passwords.verify_password("", dummy_password)
    assert len(calls) == 2


def test_production_profile_is_the_library_default_and_test_hashes_need_rehash() -> None:
    assert passwords.PROFILES["default"] == {}
    assert PasswordHasher().memory_cost >= 65536
    weak = passwords.hash_password("mật khẩu đủ dài")
    passwords.use_profile("default")
    try:
        assert passwords.needs_rehash(weak)
    finally:
        passwords.use_profile("test-insecure")
    with pytest.raises(ValueError, match="unknown argon2 profile"):
        passwords.use_profile("fast")


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12"),
        ("1234567890", "at least 12"),
        ("password123", "at least 12"),
        (" " * 12, "only spaces"),
        ("password1234", "too common"),
        ("  Qwertyuiop123 ", "too common"),
        ("x" * 257, "at most 256"),
        ("Cb-Tra-Kot", "must not be the user name"),
        ("một câu dài dễ nhớ", None),
    ],
)
def test_password_policy(password: str, problem: str | None) -> None:
    found = passwords.password_problem(password, username="cb-tra-kot")
    assert (found is None) if problem is None else (problem in (found or ""))


NOW = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
OFFICER = Principal(username="cb-tra-kot", role="commune_officer", unit_id="tra-kot", session_id="s1")


def test_access_token_round_trip_and_expiry() -> None:
    tokens = AccessTokens(SECRET, timedelta(minutes=15))
    issued = tokens.issue(OFFICER, NOW)
    assert issued.expires_at == NOW + timedelta(minutes=15)
    back = tokens.verify(issued.token, NOW + timedelta(minutes=14))
    assert (back.username, back.role, back.unit_id, back.session_id) == (
        "cb-tra-kot",
        "commune_officer",
        "tra-kot",
        "s1",
    )
    with pytest.raises(InvalidToken) as info:
        tokens.verify(issued.token, NOW + timedelta(minutes=15))
    assert info.value.expired
    assert tokens.verify_ignoring_expiry(issued.token).session_id == "s1"


def test_access_token_forgeries_are_refused() -> None:
    tokens = AccessTokens(SECRET, timedelta(minutes=15))
    other = AccessTokens("another-secret-key-" + "y" * 40, timedelta(minutes=15))
    forged = other.issue(OFFICER, NOW).token
    with pytest.raises(InvalidToken, match="bad signature"):
        tokens.verify(forged, NOW)
    claims = {"iss": "ioc", "aud": "ioc-api", "sub": "admin", "role": "admin", "iat": 0, "exp": 2**40, "jti": "j"}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})  # type: ignore[arg-type]
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        tokens.verify(unsigned, NOW)
    with pytest.raises(InvalidToken, match="well-formed"):
        tokens.verify("garbage", NOW)
    with pytest.raises(InvalidToken):
        tokens.verify("", NOW)


def test_missing_or_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigError, match="IOC_SECRET_KEY is not set"):
        AccessTokens(None, timedelta(minutes=15))
    with pytest.raises(AuthConfigError, match="too short"):
        AccessTokens("short", timedelta(minutes=15))
    with pytest.raises(ValueError, match="users only"):
        AccessTokens(SECRET, timedelta(minutes=1)).issue(Principal("cam", "device", kind="api_key"), NOW)


def test_token_bucket_refills_with_time_and_forgets_full_buckets() -> None:
    now = [0.0]
    buckets = TokenBuckets(BucketPolicy(capacity=2, refill_per_s=0.5), lambda: now[0], max_keys=2)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)
    now[0] = 2.0
    assert buckets.take("a") == 0.0
    now[0] = 100.0
    buckets.take("b")
    buckets.take("c")
    assert len(buckets) <= 2


def test_login_limiter_names_the_limit_that_was_hit() -> None:
    limiter = LoginRateLimiter(lambda: 0.0, per_address=BucketPolicy(3, 1 / 60), per_username=BucketPolicy(1, 1 / 60))
    assert limiter.check("10.0.0.1", "alice") is None
    assert limiter.check("10.0.0.1", "alice") == ("username", 60)
    assert limiter.check("10.0.0.1", "bob") is None
    assert limiter.check("10.0.0.1", "carol") == ("address", 60)
