"""Password hashing with Argon2id (argon2-cffi).

One :class:`~argon2.PasswordHasher` with the library's default parameters (RFC 9106 "low memory":
t=3, m=64 MiB, p=4) is used everywhere, so hashes written by the district seeding
(``ioc.district``) and by the users API are the same kind. When the library's defaults change, old
hashes still verify and :func:`needs_rehash` tells the login path to store a fresh one.

Each verification uses 64 MiB of memory and tens of milliseconds of CPU. A burst of logins must not
exhaust the machine, so at most :data:`MAX_CONCURRENT_HASHES` run at a time in this process; the
others wait their turn (the login rate limit keeps that queue short).

**Test profile.** ``IOC_ARGON2_PROFILE=test-insecure`` (or :func:`use_profile` from a test fixture)
switches to the smallest parameters argon2 allows, so test suites can log in hundreds of times in a
second. It is never the default, and a process using it logs a warning at import.
"""

from __future__ import annotations

import logging
import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
# Argon2 accepts anything, but hashing megabytes of "password" is a cheap denial of service.
MAX_PASSWORD_LENGTH = 256
MAX_CONCURRENT_HASHES = max(2, min(4, os.cpu_count() or 2))

#: Named parameter sets. ``default`` is argon2-cffi's RFC 9106 low-memory profile.
PROFILES: dict[str, dict[str, int]] = {
    "default": {},
    # Tests only: 1 pass over 8 KiB. Never use in production.
    "test-insecure": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},
}
PROFILE_ENV = "IOC_ARGON2_PROFILE"

_slots = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
_hasher = PasswordHasher()
_dummy: str | None = None


def use_profile(name: str) -> str:
    """Switch this process to the parameter set ``name``; returns the previous profile's name."""
    global _hasher, _dummy, _profile
    if name not in PROFILES:
        raise ValueError(f"unknown argon2 profile {name!r}; known: {', '.join(PROFILES)}")
    previous = _profile
    _hasher = PasswordHasher(**PROFILES[name])
    _dummy = None
    _profile = name
    if name != "default":
        log.warning("argon2 profile %r is in use: password hashes are weak (tests only)", name)
    return previous


_profile = "default"
if os.environ.get(PROFILE_ENV, "default") != "default":
    use_profile(os.environ[PROFILE_ENV])


def hash_password(password: str) -> str:
    """An encoded Argon2id hash (``$argon2id$v=19$m=...``) of ``password``."""
    with _slots:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises for a wrong or malformed hash.

    ``password_hash=None`` or ``""`` (a user without a password, e.g. not yet set by an admin) still costs one
    verification against a dummy hash, so the answer takes as long as for a real user: response
    times do not tell which user names exist.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    target = password_hash or _dummy_hash()
    try:
        with _slots:
            ok = _hasher.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and bool(password_hash)


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with other parameters than today's (store a new one)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def password_problem(password: str, *, username: str | None = None) -> str | None:
    """Why ``password`` is not acceptable for a new or reset password, or None.

    Length is what matters (NIST SP 800-63B): no composition rules, but at least
    :data:`MIN_PASSWORD_LENGTH` characters that are not all whitespace, not the user name, and not
    in the list of common passwords (:func:`is_common`).
    """
    if username and password.strip().casefold() == username.strip().casefold():
        return "password must not be the user name"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must have at most {MAX_PASSWORD_LENGTH} characters"
    if not password.strip():
        return "password must not be only spaces"
    if is_common(password):
        return "password is too common (it is in a list of leaked passwords)"
    return None


_common: frozenset[str] | None = None


def is_common(password: str) -> bool:
    """Whether ``password`` (case and surrounding spaces ignored, inner spaces too) is one of the 30,000
    most common leaked passwords. The list is the one zxcvbn (PyPI ``zxcvbn``) ships, so it is
    maintained upstream rather than pasted here."""
    global _common
    if _common is None:
        from zxcvbn.frequency_lists import FREQUENCY_LISTS

        _common = frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])
    folded = password.strip().casefold()
    return folded in _common or "".join(folded.split()) in _common


def _dummy_hash() -> str:
    """A hash with today's parameters, so verifying against it costs what a real user's does."""
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash("not a password: used to spend the same time on unknown users")
    return _dummy
