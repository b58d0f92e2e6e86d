"""Tracking codes a citizen can read over the phone: ``PA-7K3M-Q9XD``.

Eight symbols of Crockford's base32 (no I, L, O, U: nothing to confuse with 1, 0 or V) drawn from
``secrets``: 40 random bits, so codes are not sequential and one code says nothing about another;
guessing a valid one among even a million reports takes about a million tries, and lookups are
rate-limited. The stored form is upper case without separators; input is forgiving (lower case,
spaces, dashes, O for 0, I/L for 1).
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
PREFIX = "PA"
_FIXES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    return f"{PREFIX}-{code[:4]}-{code[4:]}"


def normalise(text: str) -> str | None:
    """The stored form of what a citizen typed, or None when it cannot be a code."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if cleaned.startswith(PREFIX) and len(cleaned) == LENGTH + len(PREFIX):
        cleaned = cleaned[len(PREFIX) :]
    cleaned = cleaned.translate(_FIXES)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned
