"""The senders of the warning channels that leave the IOC: Web Push, e-mail, signed webhooks.

Each returns a short reason on success and raises :class:`DeliveryFailed` (``retry`` or not) on
failure; the dispatcher records both in the ledger.

* **Web Push** with ``pywebpush`` (RFC 8030 push service, RFC 8291 ``aes128gcm`` payload
  encryption, RFC 8292 VAPID): the server's key is made once under ``IOC_VAR_DIR`` and its public
  half is what phones subscribe with.
* **E-mail** with the standard library's ``smtplib`` to ``IOC_SMTP_URL``; the CAP document rides along
  as an ``application/cap+xml`` attachment.
* **Webhooks** with ``httpx``: the JSON body is signed with HMAC-SHA256 over ``<timestamp>.<body>``
  (headers ``X-IOC-Timestamp`` and ``X-IOC-Signature: sha256=<hex>``), the same scheme partners know
  from Stripe or GitHub; ``X-IOC-Delivery`` lets the receiver drop a retried duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import smtplib
import time
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization

from ioc.warnings.config import Webhook


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, retry: bool, gone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.gone = gone


# -- Web Push ---------------------------------------------------------------------------------------


def vapid_key_path(var_dir: Path) -> Path:
    return Path(var_dir) / "vapid-private.pem"


def load_vapid(var_dir: Path) -> Any:
    """The server's VAPID key (made on first use, mode 0600)."""
    from py_vapid import Vapid

    path = vapid_key_path(var_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Vapid()
        key.generate_keys()
        tmp = path.with_suffix(".tmp")
        key.save_key(str(tmp))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return Vapid.from_file(str(path))


def vapid_public_key(var_dir: Path) -> str:
    """The application server key phones subscribe with (base64url, uncompressed P-256 point)."""
    raw = load_vapid(var_dir).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def send_push(subscription: dict[str, Any], payload: dict[str, Any], *, var_dir: Path, subject: str,
              ttl_s: int = 3600) -> str:  # fmt: skip
    from pywebpush import WebPushException, webpush

    try:
        response = webpush(
            subscription_info=subscription, data=json.dumps(payload, ensure_ascii=False),
            vapid_private_key=load_vapid(var_dir), vapid_claims={"sub": subject}, ttl=ttl_s, timeout=10,
        )  # fmt: skip
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 410):
            raise DeliveryFailed(f"subscription gone (HTTP {status})", retry=False, gone=True) from exc
        raise DeliveryFailed(f"push service: HTTP {status}" if status else f"push service: {exc.message}",
                             retry=status is None or status >= 500 or status == 429) from exc  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - requests' connection errors: the push service is away
        raise DeliveryFailed(f"push service unreachable: {type(exc).__name__}", retry=True) from exc
    return f"accepted by the push service (HTTP {response.status_code})"


# -- e-mail -----------------------------------------------------------------------------------------


def send_email(smtp_url: str | None, sender: str, to: str, subject: str, body: str, cap_xml: bytes) -> str:
    if not smtp_url:
        raise DeliveryFailed("no SMTP server configured (IOC_SMTP_URL)", retry=False)
    parts = urlsplit(smtp_url)
    # Python 3.11's email folding drops the space at a fold between encoded words ("biến ápTrà Kót",
    # measured): the subject is not folded (RFC 5322 allows 998 characters a line) and kept short.
    message = EmailMessage(policy=email_policy.default.clone(max_line_length=998))
    subject = subject if len(subject) <= 200 else subject[:199] + "…"
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    if cap_xml:  # warnings carry their CAP document; an on-call page is text only
        message.add_attachment(cap_xml, maintype="application", subtype="cap+xml", filename="warning.cap.xml")
    try:
        klass = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with klass(parts.hostname or "localhost", parts.port or (465 if parts.scheme == "smtps" else 25),
                   timeout=10) as smtp:  # fmt: skip
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed(f"recipient refused: {exc.recipients}", retry=False) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}"[:300], retry=True) from exc
    if refused:
        raise DeliveryFailed(f"recipient refused: {refused}", retry=False)
    return f"accepted by {parts.hostname}:{parts.port}"


# -- webhooks ---------------------------------------------------------------------------------------


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def send_webhook(hook: Webhook, delivery_id: int, payload: dict[str, Any]) -> str:
    secret = hook.secret()
    if secret is None:
        raise DeliveryFailed(f"no secret in ${hook.secret_env}: nothing unsigned leaves the IOC", retry=False)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-IOC-Timestamp": timestamp,
        "X-IOC-Signature": signature(secret, timestamp, body),
        "X-IOC-Delivery": str(delivery_id),
    }
    try:
        response = httpx.post(str(hook.url), content=body, headers=headers, timeout=10.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300], retry=True) from exc
    if 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    retry = response.status_code >= 500 or response.status_code in (408, 429)
    raise DeliveryFailed(f"HTTP {response.status_code}", retry=retry)
