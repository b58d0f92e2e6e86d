"""No secret in any log line: access tokens, refresh tokens, API keys and tracking codes are redacted
from what uvicorn logs (its access log and its websocket lines carry the full URL with its query).

Browsers cannot send headers on ``<img src>`` or a websocket, so the pages used to put the access
token in the URL (``?access_token=``); the pages now authenticate websockets with a first message,
but URLs with tokens still reach the server from older pages and other clients. The filter rewrites
the record's arguments before any handler formats them, so every handler (console, file, journald)
gets the redacted line. Installed on the ``uvicorn.access`` and ``uvicorn.error`` loggers by
:func:`install` (idempotent; called by ``create_app``).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
#: Query parameters whose values are secrets.
SECRET_PARAMS = ("access_token", "refresh_token", "token", "api_key", "apikey", "key", "password", "code",
                 "tracking_code")  # fmt: skip
_PARAM = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_PARAMS) + r")=)[^&#\s\"]*")
#: Anything that looks like one of our secrets wherever it appears: a JWT, a refresh token, an API key,
#: a tracking code (``PA-XXXX-XXXX``, e.g. pasted into an Open311 URL).
_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+|ioc_(?:rt|ak)_[A-Za-z0-9_-]+"
    r"|(?i:\bPA-?[0-9A-Z]{4}-?[0-9A-Z]{4}\b)"
)
#: A tracking code in a citizen's URL (the reporter's secret): /api/public/reports/PA-XXXX-XXXX/...
_TRACKING = re.compile(r"(/api/public/reports/)(?!$)[^/?#\s\"]+")


def redact(text: str) -> str:
    text = _PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SHAPES.sub(REDACTED, text)
    return _TRACKING.sub(lambda m: m.group(1) + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Redacts secrets in a record's message and string arguments (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install(names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
