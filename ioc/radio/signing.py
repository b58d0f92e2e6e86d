"""Signed radio commands: a cluster plays only what the IOC signed for it (docs/radio.md, "Signed commands").

A broker login is not enough to command a loudspeaker: whoever holds the radio service's password,
or a broker that was broken into, could otherwise make every commune's horns play. So every command
travels as a **JWS** (RFC 7515, compact serialisation) signed with **Ed25519** (``alg: EdDSA``), with
one key pair per cluster:

* the IOC derives cluster ``c``'s private key from one district secret (``IOC_RADIO_COMMAND_KEY`` or
  the file ``IOC_RADIO_COMMAND_KEY_FILE``): the 32-byte seed is HMAC-SHA256(secret,
  ``"ioc-radio-command-v1:" + c``). One secret to keep, 65 independent keys: a cluster's public key
  says nothing about another's, and a device holds only its own *public* key, so a stolen box
  cannot sign anything;
* the device is provisioned with its public key (``ioc broker credentials <cluster>``) and checks,
  before it does anything: the signature, ``target`` (its own id), ``expires_at`` (present and not
  passed) and that it has not seen this ``(correlation_id, attempt)`` before (a replay). A re-send by
  the IOC carries the next ``attempt`` and is answered again, done once.

The signing and checking are PyJWT's (a well-kept JOSE library over ``cryptography``); any JOSE
library on the device side verifies the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.api_jws import PyJWS
from pydantic import ValidationError

from ioc.contract.radio import COMMAND_ADAPTER, RadioCommand

KEY_LABEL = b"ioc-radio-command-v1:"
JWS_TYPE = "ioc-radio-cmd+jws"
MAX_COMMAND_BYTES = 256 * 1024  # a week of 200 programmes fits many times over
_JWS = PyJWS()


def _master_from_text(text: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = text.encode()
    if len(raw) < 32:
        raise ValueError("the radio command key must be at least 32 bytes (64 hex characters)")
    return raw


class CommandKeys:
    """The IOC side: one Ed25519 key per cluster, derived from the district secret."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("the radio command key must be at least 32 bytes")
        self._master = master
        self._cache: dict[str, Ed25519PrivateKey] = {}

    @classmethod
    def from_hex(cls, text: str) -> CommandKeys:
        return cls(_master_from_text(text))

    @classmethod
    def from_settings(cls, settings: Any = None) -> CommandKeys:
        """The key of IOC_RADIO_COMMAND_KEY, else of IOC_RADIO_COMMAND_KEY_FILE, else of
        ``<var_dir>/radio-command.key`` (made on first use, mode 0600, so `ioc up` needs no setup)."""
        if settings is None:
            from ioc.settings import get_settings

            settings = get_settings()
        value = getattr(settings, "radio_command_key", None)
        if value is not None:
            return cls.from_hex(value.get_secret_value())
        path = getattr(settings, "radio_command_key_file", None) or Path(settings.var_dir) / "radio-command.key"
        return cls.from_hex(ensure_key_file(Path(path)))

    def private_key(self, cluster_id: str) -> Ed25519PrivateKey:
        key = self._cache.get(cluster_id)
        if key is None:
            seed = hmac.new(self._master, KEY_LABEL + cluster_id.encode(), hashlib.sha256).digest()
            key = self._cache[cluster_id] = Ed25519PrivateKey.from_private_bytes(seed)
        return key

    def public_key(self, cluster_id: str) -> Ed25519PublicKey:
        return self.private_key(cluster_id).public_key()

    def public_key_hex(self, cluster_id: str) -> str:
        """The 32 raw bytes of the cluster's public key, in hex (what the device is provisioned with)."""
        return self.public_key(cluster_id).public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def key_id(self, cluster_id: str) -> str:
        """``<cluster>:<8 hex of the public key's SHA-256>``: tells a device which key signed, across rotations."""
        return f"{cluster_id}:{hashlib.sha256(bytes.fromhex(self.public_key_hex(cluster_id))).hexdigest()[:8]}"

    def sign(self, cluster_id: str, command: dict[str, Any]) -> bytes:
        """The compact JWS of ``command`` (its JSON as the JWS payload), signed with the cluster's key."""
        body = json.dumps(command, separators=(",", ":"), ensure_ascii=False).encode()
        token = _JWS.encode(body, self.private_key(cluster_id), algorithm="EdDSA",
                            headers={"kid": self.key_id(cluster_id), "typ": JWS_TYPE})  # fmt: skip
        return token.encode("ascii")

    def verifier(self, cluster_id: str) -> CommandVerifier:
        """What the cluster ``cluster_id`` is provisioned with (the simulator's devices use this)."""
        return CommandVerifier(cluster_id, self.public_key(cluster_id))


def ensure_key_file(path: Path) -> str:
    """Read the key in ``path``; create it (64 random hex characters, mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path.read_text()


@dataclass(frozen=True)
class Refusal:
    """Why a cluster did not obey a message on its command topic."""

    reason: str
    correlation_id: str | None = None


class CommandVerifier:
    """The device side: check one message of the ``cmd`` topic before doing anything with it."""

    def __init__(self, device_id: str, public_key: Ed25519PublicKey | bytes, *, seen_max: int = 4096) -> None:
        self.device_id = device_id
        if isinstance(public_key, bytes):
            public_key = Ed25519PublicKey.from_public_bytes(public_key)
        self.public_key = public_key
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._seen_max = seen_max

    def check(self, payload: bytes, now: datetime) -> RadioCommand | Refusal:
        if len(payload) > MAX_COMMAND_BYTES:
            return Refusal(f"command of {len(payload)} bytes is larger than {MAX_COMMAND_BYTES}")
        try:
            token = payload.decode("ascii")
            found = _JWS.decode_complete(token, self.public_key, algorithms=["EdDSA"])
        except UnicodeDecodeError:
            return Refusal("unsigned: not a JWS (header.payload.signature in base64url)")
        except jwt.InvalidSignatureError:
            claimed = _unverified(payload)
            cid = claimed.get("correlation_id") if isinstance(claimed.get("correlation_id"), str) else None
            target = claimed.get("target")
            if isinstance(target, str) and target != self.device_id:
                return Refusal(f"other device: signed for {target[:64]!r}, not for this cluster", cid)
            return Refusal("forged: the signature does not verify with this cluster's key", cid)
        except jwt.InvalidAlgorithmError as exc:
            return Refusal(f"unsigned: {exc}")
        except jwt.PyJWTError as exc:
            return Refusal(f"unsigned: not a JWS ({str(exc)[:120]})")
        try:
            command = COMMAND_ADAPTER.validate_json(found["payload"], strict=False)
        except ValidationError as exc:
            first = exc.errors()[0]
            return Refusal(f"invalid command: {'.'.join(map(str, first['loc']))}: {first['msg']}"[:200])
        cid = command.correlation_id
        if command.target != self.device_id:
            return Refusal(f"other device: the command targets {command.target!r}", cid)
        if command.expires_at is None:
            return Refusal("no expiry: a command must carry expires_at", cid)
        if command.expires_at <= now:
            return Refusal(f"expired at {command.expires_at.isoformat()}", cid)
        key = (cid, command.attempt)
        if key in self._seen:
            return Refusal(f"replayed: attempt {command.attempt} of {cid} was already received", cid)
        self._seen[key] = None
        while len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        return command


def _unverified(payload: bytes) -> dict[str, Any]:
    """The claims of a JWS whose signature failed: only to word the refusal, never to act on."""
    try:
        body = _JWS.decode_complete(payload.decode("ascii"), options={"verify_signature": False})["payload"]
        value = json.loads(body)
        return value if isinstance(value, dict) else {}
    except Exception:  # noqa: BLE001 - wording only
        return {}
