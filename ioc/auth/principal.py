"""Who is calling: a person (by access token) or a device/integration (by API key).

Roles form one namespace:

=================  ==================================================================
admin              manages users and API keys; sees the whole district
operator           district operations centre staff; sees the whole district
leader             district leaders; sees the whole district
commune_officer    staff of one commune (``unit_id``); sees that commune only
device             an API key of a field device (camera box, radio, sensor gateway)
integration        an API key of an outside system (partner app, CAP feed, hotline)
=================  ==================================================================

A unit-bound principal (commune officer, or an API key with a unit) sees the records of its own
unit and of the units that roll up to it (a commune merged into it, its sub-units); that set is
``units``. It starts as just ``{unit_id}`` and is widened from the ``units`` table by
:func:`ioc.auth.repository.units_in_scope` (the ``UnitScope`` dependency does that per request).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

Role = Literal["admin", "operator", "leader", "commune_officer", "device", "integration"]
UserRole = Literal["admin", "operator", "leader", "commune_officer"]
KeyRole = Literal["device", "integration"]

ROLES: tuple[str, ...] = get_args(Role)
USER_ROLES: tuple[str, ...] = get_args(UserRole)
KEY_ROLES: tuple[str, ...] = get_args(KeyRole)
DISTRICT_WIDE_ROLES = frozenset({"admin", "operator", "leader"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request (or one websocket connection)."""

    username: str
    role: Role
    unit_id: str | None = None
    kind: Literal["user", "api_key"] = "user"
    #: Login session (refresh-token family) of a user's access token; None for API keys.
    session_id: str | None = None
    #: Units whose records this principal may see, when unit-bound; see the module docstring.
    units: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if self.role == "commune_officer" and not self.unit_id:
            raise ValueError("a commune officer belongs to a unit")
        if self.unit_id and self.unit_id not in self.units:
            object.__setattr__(self, "units", self.units | {self.unit_id})

    @property
    def is_district_wide(self) -> bool:
        """Sees every unit: district staff, and API keys not tied to a unit."""
        return self.role in DISTRICT_WIDE_ROLES or (self.kind == "api_key" and self.unit_id is None)

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    def can_see_unit(self, unit_id: str | None) -> bool:
        """Whether records of ``unit_id`` are visible. Records with no unit are district-only."""
        if self.is_district_wide:
            return True
        return unit_id is not None and unit_id in self.units

    def visible_units(self) -> frozenset[str] | None:
        """The units to filter lists by, or None for "every unit"."""
        return None if self.is_district_wide else self.units

    def with_units(self, units: frozenset[str] | set[str]) -> Principal:
        """The same principal with its unit scope widened to ``units`` (its own unit is kept)."""
        return replace(self, units=frozenset(units))

    @property
    def actor(self) -> str:
        """How audit trails name this principal: ``alice`` or ``key:camera-gw-1``."""
        return self.username if self.kind == "user" else f"key:{self.username}"
