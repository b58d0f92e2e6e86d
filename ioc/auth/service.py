"""Everything authentication needs at run time, built once per app from the settings.

:class:`AuthConfig` gathers the lifetimes and limits (defaults here; each can be overridden by a
``Settings`` field of the same meaning when the deployment defines one, see
:meth:`AuthConfig.from_settings`). :class:`AuthContext` holds the signing key, the clock and the
login rate limiter. Building it fails with :class:`~ioc.auth.tokens.AuthConfigError` when
``IOC_SECRET_KEY`` is missing or too short: the auth routes then answer 503 with that message
instead of running with a guessable key (``ioc up`` generates a development key, so only a hand-run
API process meets this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ioc.auth.ratelimit import PER_ADDRESS, PER_USERNAME, BucketPolicy, LoginRateLimiter
from ioc.auth.repository import LockoutPolicy
from ioc.auth.throttle import ThrottlePolicy
from ioc.auth.tokens import AccessTokens, AuthConfigError, TokenConfig
from ioc.clock import Clock, SystemClock


@dataclass(frozen=True)
class AuthConfig:
    tokens: TokenConfig = field(default_factory=TokenConfig)
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)  # obsolete: accounts are never locked
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    per_address: BucketPolicy = PER_ADDRESS
    per_username: BucketPolicy = PER_USERNAME

    @classmethod
    def from_settings(cls, settings: Any) -> AuthConfig:
        """Defaults, overridden by these optional ``Settings`` fields when present and set:
        ``access_token_ttl_s``, ``refresh_token_ttl_days``, ``session_max_age_days``,
        ``login_max_failures``, ``login_failure_window_s``, ``login_lockout_s``."""

        def opt(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        tokens = TokenConfig()
        lockout = LockoutPolicy()
        tokens = TokenConfig(
            access_ttl=timedelta(seconds=opt("access_token_ttl_s", tokens.access_ttl.total_seconds())),
            refresh_ttl=timedelta(days=opt("refresh_token_ttl_days", tokens.refresh_ttl.days)),
            session_max_age=timedelta(days=opt("session_max_age_days", tokens.session_max_age.days)),
        )
        lockout = LockoutPolicy(
            max_failures=opt("login_max_failures", lockout.max_failures),
            window=timedelta(seconds=opt("login_failure_window_s", lockout.window.total_seconds())),
            lock_for=timedelta(seconds=opt("login_lockout_s", lockout.lock_for.total_seconds())),
        )
        return cls(tokens=tokens, lockout=lockout)


class AuthContext:
    """Signing key, clock, limits and login buckets of one app."""

    def __init__(self, secret_key: str | None, *, config: AuthConfig | None = None, clock: Clock | None = None):
        self.config = config or AuthConfig()
        self.clock: Clock = clock or SystemClock()
        self.tokens = AccessTokens(secret_key, self.config.tokens.access_ttl)
        self.login_limiter = LoginRateLimiter(
            lambda: self.clock.now().timestamp(),
            per_address=self.config.per_address,
            per_username=self.config.per_username,
        )

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Clock | None = None) -> AuthContext:
        """Raises :class:`~ioc.auth.tokens.AuthConfigError` when the secret key is unusable."""
        secret = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
        return cls(secret, config=AuthConfig.from_settings(settings), clock=clock)


def secret_key_problem(settings: Any) -> str | None:
    """Why the settings' ``IOC_SECRET_KEY`` cannot sign tokens, or None: for a fail-fast check at startup."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    try:
        AccessTokens(secret, TokenConfig().access_ttl)
    except AuthConfigError as exc:
        return str(exc)
    return None
