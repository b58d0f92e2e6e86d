"""The signed-command format device makers implement: docs/radio.md's worked example is what the
code produces, and a third-party JOSE verification (PyJWT) accepts it (issue #14)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ioc.radio.signing import CommandKeys, Refusal

DOC = (Path(__file__).resolve().parent.parent / "docs" / "radio.md").read_text()
SECRET = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
CID = "c-5f2a9c01d4e6b7a8"
COMMAND = {"v": 1, "id": CID, "ts": "2026-03-01T18:30:00+07:00", "correlation_id": CID,
           "target": "radio-tra-kot-1", "expires_at": "2026-03-01T18:30:30+07:00", "command": "volume", "volume": 40,
           "attempt": 1}  # fmt: skip


def test_the_worked_example_in_docs_is_what_the_code_signs_and_a_jose_library_verifies_it() -> None:
    keys = CommandKeys.from_hex(SECRET)
    assert SECRET in DOC
    public = keys.public_key_hex("radio-tra-kot-1")
    assert f"`{public}`" in DOC and f"`{keys.key_id('radio-tra-kot-1')}`" in DOC
    token = keys.sign("radio-tra-kot-1", COMMAND).decode()
    [documented] = re.findall(r"```text\n([A-Za-z0-9_.-]+)\n```", DOC)
    assert documented == token  # Ed25519 is deterministic: the doc's bytes are the code's bytes
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
    assert jwt.api_jws.PyJWS().decode(documented, key, algorithms=["EdDSA"]).decode() in DOC


def test_the_device_check_accepts_it_in_time_once_and_refuses_the_rest() -> None:
    keys = CommandKeys.from_hex(SECRET)
    token = keys.sign("radio-tra-kot-1", COMMAND)
    device = keys.verifier("radio-tra-kot-1")
    before = datetime.fromisoformat("2026-03-01T18:30:10+07:00")
    assert not isinstance(device.check(token, before), Refusal)
    assert device.check(token, before).reason.startswith("replayed")  # type: ignore[union-attr]
    again = keys.sign("radio-tra-kot-1", {**COMMAND, "attempt": 2})
    assert not isinstance(device.check(again, before), Refusal)  # the IOC's own re-send
    late = keys.verifier("radio-tra-kot-1").check(token, datetime.fromisoformat("2026-03-01T18:31:00+07:00"))
    assert isinstance(late, Refusal) and late.reason.startswith("expired at")
    other = keys.verifier("radio-tra-kot-2").check(token, before)
    assert isinstance(other, Refusal) and other.reason.startswith("other device")
    assert keys.verifier("radio-tra-kot-1").check(b"\xff" * 10, before).reason.startswith("unsigned")  # type: ignore[union-attr]
    tampered = token.replace(b".eyJ2", b".eyJ3", 1)
    assert isinstance(keys.verifier("radio-tra-kot-1").check(tampered, before), Refusal)
    none_alg = jwt.api_jws.PyJWS().encode(b"{}", None, algorithm="none")
    assert keys.verifier("radio-tra-kot-1").check(none_alg.encode(), before).reason.startswith("unsigned")  # type: ignore[union-attr]
