"""``/api/users`` and ``/api/api-keys``: accounts and keys, for admins only.

Disabling a user or resetting their password ends every login session of theirs at once (their
access tokens stop working on the next request). An API key's secret is shown once, in the answer
to its creation; the database keeps only its SHA-256.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ioc.auth import passwords, repository
from ioc.auth.deps import AdminCaller, auth_context
from ioc.auth.principal import KEY_ROLES
from ioc.auth.service import AuthContext
from ioc.auth.tokens import new_api_key, revoke_user_sessions
from ioc.http.errors import Problem, problem_responses

router = APIRouter(prefix="/api", tags=["users"])

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,63}$"
Context = Annotated[AuthContext, Depends(auth_context)]
UserName = Annotated[str, Path(pattern=USERNAME_PATTERN, description="User name", examples=["cb-tra-kot"])]


class UserOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "username": "cb-tra-kot",
                    "display_name": "Cán bộ xã Trà Kót",
                    "role": "commune_officer",
                    "unit_id": "tra-kot",
                    "active": True,
                    "locked_until": None,
                    "failed_logins": 0,
                    "created_at": "2026-02-01T02:00:00Z",
                    "last_login_at": "2026-03-01T00:58:12Z",
                }
            ]
        }
    )

    id: int
    username: str
    display_name: str
    role: str
    unit_id: str | None
    active: bool
    locked_until: datetime | None
    failed_logins: int
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "cb-tra-kot-2",
                    "display_name": "Nguyễn Văn An",
                    "role": "commune_officer",
                    "unit_id": "tra-kot",
                    "password": "một mật khẩu đủ dài",
                }
            ]
        }
    )

    username: str = Field(pattern=USERNAME_PATTERN, description="Lower case letters, digits, `.`, `_`, `-`")
    display_name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "operator", "leader", "commune_officer"]
    unit_id: str | None = Field(default=None, max_length=64, description="Required for a commune officer")
    password: str | None = Field(
        default=None,
        max_length=1024,
        description="At least 12 characters, not only spaces, not a common password; omitted: the account "
        "cannot log in yet",
    )


class PasswordReset(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "một mật khẩu mới đủ dài"}]})

    password: str = Field(max_length=1024)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "radio-tra-kot",
                    "role": "device",
                    "unit_id": "tra-kot",
                    "active": True,
                    "created_at": "2026-02-01T02:00:00Z",
                }
            ]
        }
    )

    id: int
    name: str
    role: str
    unit_id: str | None
    active: bool
    created_at: datetime


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "radio-tra-kot", "role": "device", "unit_id": "tra-kot"}]}
    )

    name: str = Field(pattern=KEY_NAME_PATTERN, description="Unique name, e.g. the device id")
    role: Literal["device", "integration"]
    unit_id: str | None = Field(default=None, max_length=64, description="The unit it belongs to; null: district")


class ApiKeyCreated(ApiKeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **ApiKeyOut.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                    "key": "ioc_ak_3q2Xb...",
                }
            ]
        }
    )

    key: str = Field(description="The secret, shown only now: send it as `X-API-Key`")


def _pool(request: Request) -> Any:
    return request.app.state.ioc.pool


def _user_out(user: repository.User) -> UserOut:
    return UserOut(**{name: getattr(user, name) for name in UserOut.model_fields})


def _key_out(key: repository.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(**{name: getattr(key, name) for name in ApiKeyOut.model_fields})


def _invalid(pointer: str, detail: str) -> Problem:
    return Problem(
        422,
        "validation-error",
        f"{pointer[1:]}: {detail}",
        errors=[{"detail": detail, "location": "body", "pointer": pointer}],
    )


def _get_user(conn: Any, username: str) -> repository.User:
    user = repository.get_user(conn, username)
    if user is None:
        raise Problem(404, "not-found", f"no user named {username!r}")
    return user


# -- users --------------------------------------------------------------------------------------------


@router.get(
    "/users", response_model=list[UserOut], summary="List users", responses=problem_responses(401, 403, 422, 503)
)
def list_users(
    request: Request,
    admin: AdminCaller,
    role: Annotated[Literal["admin", "operator", "leader", "commune_officer"] | None, Query()] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    active: Annotated[bool | None, Query()] = None,
) -> list[UserOut]:
    with _pool(request).connection() as conn:
        return [_user_out(u) for u in repository.list_users(conn, role=role, unit_id=unit, active=active)]


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    summary="Create a user",
    responses=problem_responses(401, 403, 409, 422, 503),
)
def create_user(request: Request, admin: AdminCaller, body: UserCreate) -> UserOut:
    """A commune officer needs `unit_id`; the password must pass the policy (at least 12 characters, not only
    spaces, not a common password, not the user name)."""
    if body.role == "commune_officer" and not body.unit_id:
        raise _invalid("#/unit_id", "a commune officer belongs to a unit")
    password_hash = None
    if body.password is not None:
        problem = passwords.password_problem(body.password, username=body.username)
        if problem:
            raise _invalid("#/password", problem)
        password_hash = passwords.hash_password(body.password)
    with _pool(request).connection() as conn:
        try:
            user = repository.create_user(
                conn,
                username=body.username,
                display_name=body.display_name.strip(),
                role=body.role,
                unit_id=body.unit_id,
                password_hash=password_hash,
            )
        except repository.UserExists:
            raise Problem(409, "conflict", f"a user named {body.username!r} already exists") from None
        except repository.UnknownUnit:
            raise _invalid("#/unit_id", f"no unit {body.unit_id!r}") from None
    return _user_out(user)


@router.get(
    "/users/{username}", response_model=UserOut, summary="One user", responses=problem_responses(401, 403, 404, 503)
)
def get_user(request: Request, admin: AdminCaller, username: UserName) -> UserOut:
    with _pool(request).connection() as conn:
        return _user_out(_get_user(conn, username))


def _set_active(request: Request, context: AuthContext, admin: Any, username: str, active: bool) -> UserOut:
    if not active and username == admin.username:
        raise Problem(409, "conflict", "you cannot disable your own account")
    with _pool(request).connection() as conn:
        user = _get_user(conn, username)
        repository.set_active(conn, user.id, active)
        if not active:
            revoke_user_sessions(conn, user.id, context.clock.now(), "disabled")
        user = _get_user(conn, username)
    return _user_out(user)


@router.post(
    "/users/{username}/disable",
    response_model=UserOut,
    summary="Disable a user (ends their sessions)",
    responses=problem_responses(401, 403, 404, 409, 503),
)
def disable_user(request: Request, context: Context, admin: AdminCaller, username: UserName) -> UserOut:
    return _set_active(request, context, admin, username, False)


@router.post(
    "/users/{username}/enable",
    response_model=UserOut,
    summary="Enable a disabled user",
    responses=problem_responses(401, 403, 404, 503),
)
def enable_user(request: Request, context: Context, admin: AdminCaller, username: UserName) -> UserOut:
    return _set_active(request, context, admin, username, True)


@router.put(
    "/users/{username}/password",
    status_code=204,
    response_class=Response,
    summary="Set a user's password (ends their sessions)",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def reset_password(
    request: Request, context: Context, admin: AdminCaller, username: UserName, body: Annotated[PasswordReset, Body()]
) -> Response:
    problem = passwords.password_problem(body.password, username=username)
    if problem:
        raise _invalid("#/password", problem)
    with _pool(request).connection() as conn:
        user = _get_user(conn, username)
    password_hash = passwords.hash_password(body.password)
    with _pool(request).connection() as conn:
        repository.set_password(conn, user.id, password_hash)
        revoke_user_sessions(conn, user.id, context.clock.now(), "password_reset")
    return Response(status_code=204)


# -- API keys -----------------------------------------------------------------------------------------


@router.get(
    "/api-keys",
    response_model=list[ApiKeyOut],
    summary="List API keys (never their secrets)",
    responses=problem_responses(401, 403, 503),
)
def list_api_keys(request: Request, admin: AdminCaller) -> list[ApiKeyOut]:
    with _pool(request).connection() as conn:
        return [_key_out(k) for k in repository.list_api_keys(conn)]


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key; the answer is the only time its secret is shown",
    responses=problem_responses(401, 403, 409, 422, 503),
)
def create_api_key(request: Request, admin: AdminCaller, body: ApiKeyCreate) -> ApiKeyCreated:
    assert body.role in KEY_ROLES
    key = new_api_key()
    with _pool(request).connection() as conn:
        try:
            created = repository.create_api_key(conn, name=body.name, role=body.role, unit_id=body.unit_id, key=key)
        except repository.ApiKeyExists:
            raise Problem(409, "conflict", f"an API key named {body.name!r} already exists") from None
        except repository.UnknownUnit:
            raise _invalid("#/unit_id", f"no unit {body.unit_id!r}") from None
    return ApiKeyCreated(**_key_out(created).model_dump(), key=key)


@router.delete(
    "/api-keys/{name}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key (it stops working at once)",
    responses=problem_responses(401, 403, 404, 503),
)
def revoke_api_key(
    request: Request, admin: AdminCaller, name: Annotated[str, Path(pattern=KEY_NAME_PATTERN)]
) -> Response:
    with _pool(request).connection() as conn:
        if not repository.revoke_api_key(conn, name):
            raise Problem(404, "not-found", f"no API key named {name!r}")
    return Response(status_code=204)
