"""Local receivers for the outbound channels (Web Push, e-mail) shared by the warning and on-call tests:
a push service with the phone behind it that checks the VAPID JWT (RFC 8292) and decrypts the payload
(RFC 8291, http-ece), and an SMTP mailbox for aiosmtpd."""

from __future__ import annotations

import base64
import json
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushReceiver(BaseHTTPRequestHandler):
    """A push service and the phone behind it: checks the VAPID JWT (RFC 8292) against the key in the
    request, then decrypts the aes128gcm body (RFC 8291) with the subscription's private key."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[dict[str, Any]]
    origin: str

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        scheme, _, params = self.headers["Authorization"].partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(fields["k"]))
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.origin)
        assert scheme == "vapid" and claims["sub"].startswith("mailto:")
        assert self.headers["Content-Encoding"] == "aes128gcm" and int(self.headers["TTL"]) > 0
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        self.received.append({"payload": json.loads(plain), "vapid_key": fields["k"]})
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
