"""Passwords of the broker accounts: kept as one file per account, hashed into Mosquitto's password file.

The hash is Mosquitto 2's own ``$7$`` format (what ``mosquitto_passwd`` writes): PBKDF2-HMAC-SHA512,
101 iterations, a 12-byte random salt, ``user:$7$101$<base64 salt>$<base64 hash>``. It is computed
with the standard library's ``hashlib.pbkdf2_hmac`` rather than by running ``mosquitto_passwd`` so
that the file can be generated on a machine without Mosquitto (the deploy host, CI); the tests start
Debian's Mosquitto on the generated file, which proves the format.

Where a password comes from, first match wins: the environment variable
``IOC_BROKER_PASSWORD_<ACCOUNT>`` (upper case, ``-`` as ``_``), the file ``<secrets>/<account>.password``,
else a new random one written to that file (mode 0600). :func:`rotate` replaces the files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

ITERATIONS = 101  # Mosquitto 2.0's default for $7$
SALT_BYTES = 12


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$...`` hash Mosquitto 2 checks a password against."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def env_name(account: str) -> str:
    return "IOC_BROKER_PASSWORD_" + account.upper().replace("-", "_")


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    os.replace(tmp, path)


def password_for(account: str, secrets_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """The account's password (environment, then file); a new one is made and kept when there is none."""
    environ = os.environ if environ is None else environ
    value = environ.get(env_name(account))
    if value:
        return value
    path = secrets_dir / f"{account}.password"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    _write_secret(path, value)
    return value


def rotate(accounts: Iterable[str], secrets_dir: Path) -> list[str]:
    """New random passwords for ``accounts`` (their files are replaced); returns the accounts rotated.

    An account whose password comes from the environment is rotated by changing the environment."""
    done = []
    for account in accounts:
        _write_secret(secrets_dir / f"{account}.password", secrets.token_urlsafe(24))
        done.append(account)
    return done


def password_file(passwords: Mapping[str, str]) -> str:
    """Mosquitto's password file for ``passwords`` (account -> clear text), one hashed line each."""
    return "".join(f"{account}:{mosquitto_hash(pw)}\n" for account, pw in sorted(passwords.items()))
