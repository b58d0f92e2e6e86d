"""Every error as RFC 9457 problem details (``application/problem+json``).

A body always has ``type``, ``title``, ``status``, ``detail`` and ``instance`` (the request path).
``type`` is ``about:blank`` for plain HTTP errors (unknown path, wrong method), whose ``title`` is
the status phrase; errors this API defines have a ``type`` of the form ``/problems/<slug>`` (a URI
reference relative to the API's origin; the slugs are listed in :data:`PROBLEM_TYPES`) and a fixed
``title`` per type, while ``detail`` says what exactly went wrong this time.

Validation errors (422) add ``errors``: one entry per problem with ``detail``, ``location`` (body,
query, path, header, cookie), and either ``pointer`` (a JSON Pointer into the body, ``#/items/0/name``,
as in RFC 9457's own example) or ``parameter`` (the query/path/header/cookie name). Submitted values
are never echoed back: they may be passwords.

Raise :class:`Problem` from routes and dependencies; use :func:`problem_responses` in route
decorators so OpenAPI shows the problem schema and an example for each status.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: slug -> title. A type's title never changes between occurrences; ``detail`` carries the specifics.
PROBLEM_TYPES: dict[str, str] = {
    "validation-error": "The request is not valid",
    "not-authenticated": "Authentication required",
    "invalid-token": "Invalid or expired access token",
    "invalid-api-key": "Invalid API key",
    "invalid-credentials": "Invalid user name or password",
    "account-locked": "Account temporarily locked",
    "account-disabled": "Account disabled",
    "invalid-refresh-token": "Invalid refresh token",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "conflict": "Conflict with the current state",
    "rate-limited": "Too many requests",
    "too-large": "Request body too large",
    "unsupported-media-type": "Unsupported media type",
    "unknown-reference": "Unknown reference",
    "media-busy": "Media processing is busy",
    "auth-not-configured": "Authentication is not configured",
    "database-unavailable": "Database unavailable",
    "internal-error": "Internal server error",
}


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


class Problem(Exception):
    """An error answered as problem details.

    ``slug`` picks the type and its title (see :data:`PROBLEM_TYPES`); ``extensions`` become extra
    members of the body (e.g. ``retry_after_s``); ``headers`` are added to the response.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {slug!r}: add it to PROBLEM_TYPES")
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_body(
    *, status: int, title: str, detail: str, instance: str, type_: str = "about:blank", **extensions: Any
) -> dict[str, Any]:
    return {"type": type_, "title": title, "status": status, "detail": detail, "instance": instance, **extensions}


def problem_json(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = problem_body(status=status, title=title, detail=detail, instance=request.url.path, type_=type_, **extensions)
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


# -- handlers ------------------------------------------------------------------------------------


async def _handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_json(
        request,
        exc.status,
        PROBLEM_TYPES[exc.slug],
        exc.detail,
        type_=problem_type(exc.slug),
        headers=exc.headers,
        **exc.extensions,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == title:
        detail = f"nothing at {request.url.path}"
    elif exc.status_code == 405 and detail == title:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        detail = f"method {request.method} is not allowed on {request.url.path}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    return problem_json(request, exc.status_code, title, detail, headers=dict(exc.headers or {}))


def _pointer(parts: tuple[Any, ...]) -> str:
    """RFC 6901 JSON Pointer in URI-fragment form, as RFC 9457's example writes it."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "#" + "".join("/" + p for p in escaped)


def validation_errors(errors: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        location = str(loc[0]) if loc else "body"
        entry: dict[str, Any] = {"detail": err.get("msg", "invalid"), "location": location}
        if err.get("type"):
            entry["code"] = err["type"]
        if location == "body" or location not in ("query", "path", "header", "cookie"):
            entry["pointer"] = _pointer(loc[1:] if loc and loc[0] == "body" else loc)
        else:
            entry["parameter"] = ".".join(str(p) for p in loc[1:])
        out.append(entry)
    return out


def _where(entry: dict[str, Any]) -> str:
    if "pointer" in entry:
        return entry["pointer"][1:] or "the body"
    return f"{entry['location']} parameter {entry['parameter']!r}"


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(list(exc.errors()))
    summary = "; ".join(f"{_where(e)}: {e['detail']}" for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return problem_json(
        request,
        422,
        PROBLEM_TYPES["validation-error"],
        summary or "the request is not valid",
        type_=problem_type("validation-error"),
        errors=errors,
    )


async def _handle_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    _database_suspect(request)
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    return problem_json(
        request,
        503,
        PROBLEM_TYPES["database-unavailable"],
        "the database is unreachable or saturated; retry shortly",
        type_=problem_type("database-unavailable"),
        headers={"Retry-After": "5"},
    )


def _database_suspect(request: Request) -> None:
    watch = getattr(request.app.state, "db_watch", None)
    if watch is not None:
        watch.suspect()


async def _handle_foreign_key(request: Request, exc: Exception) -> JSONResponse:
    """A value naming something that does not exist (an unknown unit, user, alert...): 422 naming
    the column, never 500. Routes should check first; this is the net under them."""
    assert isinstance(exc, psycopg.errors.ForeignKeyViolation)
    detail_text = getattr(exc.diag, "message_detail", None) or ""
    match = re.search(r"Key \((?P<column>[^)]+)\)=\((?P<value>.*)\) is not present in table \"(?P<table>[^\"]+)\"",
                      detail_text)  # fmt: skip
    column = match["column"] if match else "?"
    table = match["table"] if match else "?"
    return problem_json(
        request,
        422,
        PROBLEM_TYPES["unknown-reference"],
        f"{column}: no such {table.rstrip('s')} (unknown reference)",
        type_=problem_type("unknown-reference"),
        errors=[{"detail": f"no such {table.rstrip('s')}", "location": "body", "pointer": f"#/{column}",
                 "code": "unknown_reference"}],
    )  # fmt: skip


async def _handle_unstorable_text(request: Request, exc: Exception) -> JSONResponse:
    """Text PostgreSQL cannot store (NUL, an unencodable character) that got past the request guard
    (multipart fields): 422, not 500."""
    return problem_json(
        request,
        422,
        PROBLEM_TYPES["validation-error"],
        f"a text value cannot be stored: {str(exc).splitlines()[0][:200]} (NUL or invalid characters)",
        type_=problem_type("validation-error"),
        errors=[{"detail": "NUL or invalid characters", "location": "body", "pointer": "#", "code": "bad_text"}],
    )


async def _handle_value_error(request: Request, exc: Exception) -> JSONResponse:
    """psycopg refuses NUL in text parameters with a ``DataError``/``ValueError`` before sending;
    values out of a column's range (a year 10000 date) likewise: both are the caller's input."""
    if isinstance(exc, psycopg.DataError | UnicodeEncodeError) or "NUL" in str(exc) or "out of range" in str(exc):
        return await _handle_unstorable_text(request, exc)
    return await _handle_unexpected(request, exc)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_json(
        request,
        500,
        PROBLEM_TYPES["internal-error"],
        "an unexpected error occurred; it has been logged",
        type_=problem_type("internal-error"),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(PoolTimeout, _handle_database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _handle_database_unavailable)
    app.add_exception_handler(psycopg.errors.ForeignKeyViolation, _handle_foreign_key)
    app.add_exception_handler(psycopg.DataError, _handle_unstorable_text)
    app.add_exception_handler(UnicodeEncodeError, _handle_unstorable_text)
    app.add_exception_handler(ValueError, _handle_value_error)
    app.add_exception_handler(OverflowError, _handle_unstorable_text)
    app.add_exception_handler(Exception, _handle_unexpected)


# -- OpenAPI -------------------------------------------------------------------------------------


def invalid(detail: str, *, pointer: str | None = None, parameter: str | None = None,
            code: str = "invalid") -> Problem:  # fmt: skip
    """A 422 naming the one field at fault, in the documented ``errors[]`` shape (a body member by its
    JSON Pointer ``#/name``, or a query/path parameter by its name)."""
    item: dict[str, Any] = {"detail": detail, "location": "body" if pointer else "query", "code": code}
    item["pointer" if pointer else "parameter"] = pointer or parameter
    return Problem(422, "validation-error", detail, errors=[item])


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI reference naming the problem type; `about:blank` for plain HTTP errors.")
    title: str = Field(description="Short summary of the problem type; the same for every occurrence.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for a person to read.")
    instance: str = Field(description="The request path that produced the problem.")


class ValidationErrorItem(BaseModel):
    detail: str
    location: str = Field(description="body, query, path, header or cookie")
    pointer: str | None = Field(default=None, description="JSON Pointer into the body, e.g. `#/items/0/name`.")
    parameter: str | None = Field(default=None, description="Name of the query/path/header/cookie parameter.")
    code: str | None = Field(default=None, description="Machine-readable kind of error, e.g. `missing`.")


class ValidationProblemDetails(ProblemDetails):
    errors: list[ValidationErrorItem] = Field(
        default_factory=list, description="One entry per problem; absent when the detail says it all."
    )


_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("validation-error", "the request is not valid"),
    401: ("not-authenticated", "send `Authorization: Bearer <access token>` or `X-API-Key: <key>`"),
    403: ("forbidden", "role 'operator' may not do this; allowed: admin"),
    404: ("not-found", "no such resource, or not visible to you"),
    409: ("conflict", "a user named 'nguyenvana' already exists"),
    423: ("account-locked", "5 failed logins in a row: the account is locked; retry in 900 s"),
    413: ("too-large", "the body is over this route's limit of 1,048,576 bytes"),
    415: ("unsupported-media-type", "send application/json"),
    429: ("rate-limited", "too many login attempts from this address; retry in 6 s"),
    503: ("database-unavailable", "the database is unreachable; retry shortly"),
}


_PLAIN_HTTP: dict[int, str] = {
    405: "method PATCH is not allowed on /api/...; allowed: GET, POST",
}


def problem_responses(*statuses: int, examples: dict[int, dict[str, Any]] | None = None) -> dict[int | str, Any]:
    """``responses=`` for a route decorator: problem+json schema and an example for each status."""
    out: dict[int | str, Any] = {}
    for status in statuses:
        if status == 422:
            out[422] = {
                "description": "Validation error",
                "model": ValidationProblemDetails,
                "content": {PROBLEM_JSON: {"example": VALIDATION_EXAMPLE}},
            }
            continue
        if status in _PLAIN_HTTP:  # framework errors: type about:blank, the status phrase as title
            example = (examples or {}).get(status) or problem_body(
                status=status, title=_phrase(status), detail=_PLAIN_HTTP[status], instance="/api/..."
            )
        else:
            slug, detail = _EXAMPLES.get(status, ("internal-error", _phrase(status)))
            example = (examples or {}).get(status) or problem_body(
                status=status, title=PROBLEM_TYPES[slug], detail=detail, instance="/api/...", type_=problem_type(slug)
            )
        out[status] = {
            "description": _phrase(status),
            "model": ProblemDetails,
            "content": {PROBLEM_JSON: {"example": example}},
        }
    return out


VALIDATION_EXAMPLE = problem_body(
    status=422,
    title=PROBLEM_TYPES["validation-error"],
    detail="/password: Field required",
    instance="/api/auth/login",
    type_=problem_type("validation-error"),
    errors=[{"detail": "Field required", "location": "body", "pointer": "#/password", "code": "missing"}],
)


def document_problems_in_openapi(app: FastAPI) -> None:
    """Make the generated OpenAPI tell the truth about errors for every route, including routes
    written without :func:`problem_responses`: FastAPI's default 422 (``HTTPValidationError`` as
    ``application/json``) is replaced by the problem+json validation schema."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ProblemDetails, ValidationErrorItem, ValidationProblemDetails):
            if model.__name__ not in components:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in model_schema.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components[model.__name__] = model_schema
        for path, path_item in schema.get("paths", {}).items():
            for operation in path_item.values():
                if not isinstance(operation, dict):
                    continue
                _document_common_statuses(path, operation)
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        _move_to_problem_json(response)
        for unused in ("HTTPValidationError", "ValidationError"):
            if not _referenced(schema, f"#/components/schemas/{unused}"):
                components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_response(status: int) -> dict[str, Any]:
    documented = problem_responses(status)[status]
    schema_name = documented["model"].__name__
    return {"description": documented["description"],
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema_name}"},
                                       "example": documented["content"][PROBLEM_JSON]["example"]}}}  # fmt: skip


OPEN311_ERROR = {
    "type": "array",
    "items": {"type": "object", "required": ["code", "description"],
              "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}  # fmt: skip


def _document_common_statuses(path: str, operation: dict[str, Any]) -> None:
    """Statuses any route may answer without its own code saying so: the request guard's (422 for
    a bad query, 413 for a body over the limit, 503 while the database is away), the access
    dependencies' (401, 403 on routes with a security requirement), 404 for unknown ids in the
    path. Open311 routes answer their errors in the GeoReport v2 format instead of problem+json."""
    responses = operation.setdefault("responses", {})
    wanted = {422, 503}
    if "requestBody" in operation:
        wanted.add(413)
    if operation.get("security"):
        wanted |= {401, 403}
    if "{" in path:
        wanted |= {400, 404}  # 400: the guard refuses control characters in the path
    if path in ("/healthz", "/metrics", "/openapi.json"):
        wanted = set()
    if path.startswith("/open311/"):
        for status in sorted(wanted | {400, 403, 404, 429}):
            response = responses.setdefault(str(status), _problem_response(status))
            if status in (400, 403, 404, 429):  # the routes' own errors: GeoReport v2 lists
                response["description"] = _phrase(status) + " (GeoReport v2 error list; problem+json from the guard)"
                response.setdefault("content", {}).update({
                    "application/json": {"schema": OPEN311_ERROR, "example": [{"code": status, "description": "..."}]},
                    "text/xml": {"schema": {"type": "string"}},
                })  # fmt: skip
        return
    for status in sorted(wanted):
        response = responses.setdefault(str(status), _problem_response(status))
        # A route with its own body for this status (readiness) may still get the guard's problem+json.
        content = response.setdefault("content", {})
        if PROBLEM_JSON not in content and status in (413, 422, 503):
            content[PROBLEM_JSON] = _problem_response(status)["content"][PROBLEM_JSON]


_PROBLEM_SCHEMAS = ("/ProblemDetails", "/ValidationProblemDetails", "/HTTPValidationError")


def _move_to_problem_json(response: dict[str, Any]) -> None:
    """FastAPI files every response model under application/json; errors are problem+json."""
    content = response.get("content", {})
    plain = content.get("application/json")
    ref = (plain or {}).get("schema", {}).get("$ref", "")
    if plain is None or not ref.endswith(_PROBLEM_SCHEMAS):
        return
    del content["application/json"]
    target = content.setdefault(PROBLEM_JSON, {})
    if ref.endswith("/HTTPValidationError"):
        target["schema"] = {"$ref": "#/components/schemas/ValidationProblemDetails"}
        target.setdefault("example", VALIDATION_EXAMPLE)
    else:
        target.setdefault("schema", plain["schema"])
    for key in ("example", "examples"):
        if key in plain:
            target.setdefault(key, plain[key])


def _referenced(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return any(v == ref if k == "$ref" else _referenced(v, ref) for k, v in node.items())
    if isinstance(node, list):
        return any(_referenced(v, ref) for v in node)
    return False
