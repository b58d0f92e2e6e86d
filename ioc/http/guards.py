"""Checks every request passes before any route, rate limiter or body parser sees it.

A pure ASGI middleware (not ``BaseHTTPMiddleware``: that one buffers nothing but also cannot stop
a body half-way) installed outermost, so that:

* **Body size** is limited per route *while the body streams in*: a declared ``Content-Length``
  over the route's limit is answered 413 before one byte is read; a chunked body is counted as
  it arrives and cut off at the limit (413). A 200 MB upload is never read, whatever comes after.
* **Text that PostgreSQL or the code behind cannot take** is refused with 4xx problem+json naming
  where it is: the path, a query parameter (not UTF-8, NUL or other control characters), a JSON or
  form field (``#/pointer``). Tab, CR and LF are allowed in bodies (multi-line descriptions).
* **A degraded database** answers 503 at once (see :mod:`ioc.http.dbwatch`) instead of letting
  every request wait for the pool: routes that need the database, and ``/ws`` (refused with a 503
  HTTP response before the upgrade when the server supports it).
* **Submissions from an address that is out of tokens** are answered 429 before their body is
  read (the route's own limiter still takes the token once the body is in).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from fastapi.encoders import jsonable_encoder

from ioc.http.errors import PROBLEM_JSON, PROBLEM_TYPES, problem_body, problem_type

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

KB = 1024
MB = 1024 * 1024

#: (method or "*", path regex, limit in bytes): the first match wins. A report carries up to five
#: photos of 10 MB and one 50 MB video; a radio recording up to IOC_RADIO_MAX_AUDIO_BYTES; a CAP document is
#: 512 KB; everything else is a small JSON or form body.
BODY_LIMITS: tuple[tuple[str, str, int | Callable[[Any], int]], ...] = (
    ("POST", r"/api/public/reports", 5 * 10 * MB + 50 * MB + 1 * MB),
    ("POST", r"/api/public/reports/[^/]+/reopen", 10 * MB + 64 * KB),
    ("POST", r"/api/alerts/[^/]+/photos", 10 * MB + 64 * KB),
    ("POST", r"/open311/v2/requests\.[a-z]+", 10 * MB + 64 * KB),
    ("POST", r"/api/radio/audio", lambda settings: settings.radio_max_audio_bytes + 64 * KB),
    ("POST", r"/api/cap", 512 * KB + 4 * KB),
    ("*", r".*", 1 * MB),
)

#: Paths that answer without the database: they keep working while it is away (the pages load and
#: show the banner; liveness and metrics stay honest).
DATABASE_FREE = re.compile(
    r"^/(healthz|metrics|openapi\.json|docs|redoc|api/ui-config|api/public/report-categories|apidocs/.*)$"
)
DATABASE_ROUTES = re.compile(r"^/(api/|open311/|ws$|readyz$)")

_ALLOWED_IN_BODY = frozenset("\t\n\r")


def bad_character(text: str, *, multiline: bool) -> str | None:
    """Why ``text`` cannot be stored, or None: NUL and other control characters (tab, CR, LF are
    allowed when ``multiline``), and lone surrogates (not encodable in UTF-8)."""
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and not (multiline and char in _ALLOWED_IN_BODY):
            return f"contains the control character U+{ord(char):04X} at position {index}"
        if category == "Cs":
            return f"contains a lone surrogate U+{ord(char):04X} at position {index}"
    return None


def _walk(value: Any, pointer: str) -> Iterable[tuple[str, str]]:
    """(pointer, reason) for every bad string (keys included) in a JSON value."""
    if isinstance(value, str):
        reason = bad_character(value, multiline=True)
        if reason:
            yield pointer or "#", reason
    elif isinstance(value, dict):
        for key, item in value.items():
            escaped = key.replace("~", "~0").replace("/", "~1")
            reason = bad_character(key, multiline=False)
            if reason:
                yield f"{pointer or '#'}/{escaped}", f"the member name {reason}"
            yield from _walk(item, f"{pointer or '#'}/{escaped}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{pointer or '#'}/{index}")


@dataclass(frozen=True)
class Refusal:
    status: int
    slug: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] | None = None


def check_query(raw: bytes) -> Refusal | None:
    """Every query parameter must be UTF-8 without control characters."""
    errors = []
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition(b"=")
        try:
            name = unquote_to_bytes(name_raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            errors.append({"location": "query", "parameter": "?", "detail": "a parameter name is not UTF-8"})
            continue
        try:
            value = unquote_to_bytes(value_raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                {"location": "query", "parameter": name, "code": "not_utf8", "detail": f"not UTF-8 (byte {exc.start})"}
            )
            continue
        reason = bad_character(name, multiline=False) or bad_character(value, multiline=False)
        if reason:
            errors.append({"location": "query", "parameter": name[:64], "code": "control_character", "detail": reason})
    if not errors:
        return None
    summary = "; ".join(f"query parameter {e['parameter']!r}: {e['detail']}" for e in errors[:5])
    return Refusal(422, "validation-error", summary, errors)


def check_body(content_type: str, body: bytes) -> Refusal | None:
    """JSON and URL-encoded form bodies: UTF-8, and no control characters in any string."""
    if not body:
        return None
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Refusal(
                400,
                "validation-error",
                f"the JSON body is not UTF-8 (byte {exc.start})",
                [{"location": "body", "pointer": "#", "code": "not_utf8", "detail": "not UTF-8"}],
            )
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return None  # FastAPI answers malformed JSON with a 422 naming the position
        found = list(_walk(value, ""))
    elif content_type == "application/x-www-form-urlencoded":
        refusal = check_query(body)
        if refusal is None:
            return None
        for error in refusal.errors or []:
            error["location"] = "body"
            error["pointer"] = "#/" + error.pop("parameter")
        return Refusal(422, "validation-error", refusal.detail.replace("query parameter", "form field"), refusal.errors)
    else:
        return None
    if not found:
        return None
    errors = [{"location": "body", "pointer": p, "code": "control_character", "detail": r} for p, r in found[:20]]
    summary = "; ".join(f"{p[1:] or 'the body'}: {r}" for p, r in found[:5])
    return Refusal(422, "validation-error", summary, errors)


def body_limit(method: str, path: str, settings: Any = None) -> int:
    """The route's limit; a limit that follows a setting (radio recordings) is read from ``settings``."""
    for rule_method, pattern, limit in BODY_LIMITS:
        if rule_method in ("*", method) and re.fullmatch(pattern, path):
            if callable(limit):
                return limit(settings) if settings is not None else 64 * MB
            return limit
    return 1 * MB


@dataclass
class _Exchange:
    started: bool = False  # the app began its response
    answered: bool = False  # the guard answered (413) in its place


#: Called with the ASGI scope before the body is read; returns a refusal (e.g. 429) or None.
PreCheck = Callable[[Scope], Refusal | None]


class RequestGuard:
    """See the module docstring. ``pre_checks``: (method, path regex, check) run before the body."""

    def __init__(self, app: Any, pre_checks: Iterable[tuple[str, str, PreCheck]] = ()) -> None:
        self.app = app
        self.pre_checks = [(m, re.compile(p), c) for m, p, c in pre_checks]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if _database_down(scope):
                await _deny_websocket(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._before_body(scope)
        if refusal is not None:  # its body is never read
            await _answer(scope, send, refusal)
            return
        method, path = scope["method"], scope["path"]
        app_state = getattr(scope.get("app"), "state", None)
        limit = body_limit(method, path, getattr(getattr(app_state, "ioc", None), "settings", None))
        state = _Exchange()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                declared_bytes = int(declared)
            except ValueError:
                await _answer(scope, send, Refusal(400, "validation-error", "Content-Length is not a number"))
                return
            if declared_bytes > limit:
                await _answer(scope, send, _too_large(limit, declared_bytes))
                return
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        inspect = content_type in ("application/json", "application/x-www-form-urlencoded") or content_type.endswith(
            "+json"
        )
        if inspect and method in ("POST", "PUT", "PATCH", "DELETE"):
            body = await _read_all(receive, limit)
            if body is None:
                await _answer(scope, send, _too_large(limit, None))
                return
            refusal = check_body(content_type, body)
            if refusal is not None:
                await _answer(scope, send, refusal)
                return
            receive = _replay(body, receive)
        else:
            receive = self._counting(scope, receive, send, limit, state)

        async def tracking_send(message: dict[str, Any]) -> None:
            if state.answered:
                return  # the 413 went out: whatever the app makes of the cut body is dropped
            if message["type"] == "http.response.start":
                state.started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if not state.answered:
                raise

    @staticmethod
    def _counting(scope: Scope, receive: Receive, send: Send, limit: int, state: _Exchange) -> Receive:
        """Count the body as it streams in; past ``limit`` answer 413 at once and tell the app the
        client went away (an exception raised here would reach the app wrapped, as a 400 or 500)."""
        size = 0

        async def counting() -> dict[str, Any]:
            nonlocal size
            if state.answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    if not state.started:
                        state.answered = True
                        await _answer(scope, send, _too_large(limit, None))
                    return {"type": "http.disconnect"}
            return message

        return counting

    def _before_body(self, scope: Scope) -> Refusal | None:
        path = scope["path"]
        reason = bad_character(path, multiline=False)
        if reason is not None or "\ufffd" in path:
            return Refusal(
                400,
                "validation-error",
                f"the path {reason or 'is not UTF-8'}",
                [{"location": "path", "code": "control_character", "detail": reason or "not UTF-8"}],
            )
        refusal = check_query(scope.get("query_string") or b"")
        if refusal is not None:
            return refusal
        if _database_down(scope) and DATABASE_ROUTES.match(path) and not DATABASE_FREE.match(path):
            return database_unavailable()
        for method, pattern, check in self.pre_checks:
            if scope["method"] == method and pattern.fullmatch(path):
                refusal = check(scope)
                if refusal is not None:
                    return refusal
        return None


def database_unavailable() -> Refusal:
    return Refusal(
        503,
        "database-unavailable",
        "cơ sở dữ liệu tạm thời không truy cập được; thử lại sau ít giây (the database is unreachable; retry shortly)",
        headers={"Retry-After": "5"},
    )


def _database_down(scope: Scope) -> bool:
    app = scope.get("app")
    watch = getattr(getattr(app, "state", None), "db_watch", None)
    return bool(watch is not None and watch.down)


def _too_large(limit: int, declared: int | None) -> Refusal:
    size = f"; {declared:,} bytes declared" if declared is not None else ""
    return Refusal(
        413,
        "too-large",
        f"nội dung quá lớn: tối đa {limit:,} byte (the body is over this route's limit of {limit:,} bytes{size})",
        [{"location": "body", "pointer": "#", "code": "too_large", "detail": f"over {limit} bytes"}],
    )


async def _read_all(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _instance(scope: Scope) -> str:
    """The request path as it was sent (percent-encoded): control characters are never echoed."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(scope.get("path", ""), safe="/")


async def _answer(scope: Scope, send: Send, refusal: Refusal) -> None:
    extensions: dict[str, Any] = {}
    if refusal.errors:
        extensions["errors"] = refusal.errors
    if refusal.headers and "Retry-After" in refusal.headers:
        extensions["retry_after_s"] = int(refusal.headers["Retry-After"])
    body = problem_body(
        status=refusal.status,
        title=PROBLEM_TYPES[refusal.slug],
        detail=refusal.detail,
        instance=_instance(scope),
        type_=problem_type(refusal.slug),
        **extensions,
    )
    payload = json.dumps(jsonable_encoder(body), ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if refusal.status == 413:
        headers.append((b"connection", b"close"))
    for name, value in (refusal.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _deny_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """503 problem+json before the upgrade where the server supports it (uvicorn, the test client);
    else accept, say why and close with 1013 (try again later)."""
    refusal = database_unavailable()
    if "websocket.http.response" in (scope.get("extensions") or {}):
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        body = problem_body(
            status=503,
            title=PROBLEM_TYPES[refusal.slug],
            detail=refusal.detail,
            instance=_instance(scope),
            type_=problem_type(refusal.slug),
            retry_after_s=5,
        )
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"retry-after", b"5"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": payload})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send(
        {
            "type": "websocket.send",
            "text": json.dumps(
                {"type": "error", "reason": "database_unavailable", "status": 503, "detail": refusal.detail}
            ),
        }
    )
    await send({"type": "websocket.close", "code": 1013, "reason": "database unavailable"})


def install_guard(app: Any, pre_checks: Iterable[tuple[str, str, PreCheck]] = ()) -> None:
    """Outermost (added last): nothing inside it reads a body or a pool before these checks."""
    app.add_middleware(RequestGuard, pre_checks=list(pre_checks))
