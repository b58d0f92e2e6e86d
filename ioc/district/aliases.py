"""Find a unit by whatever a sheet or a person calls it: its id, its official code, its name, an alias.

One-stop exports name the agency ("UBND xã Trà Sơn"), national data names the administrative code
("20900"), people type "Trà Sơn" or "tra son". All of these resolve to the unit id here, so every
place that takes a unit (imports, ``--unit`` options, the KPI API) accepts the same forms.

Matching goes from the most to the least precise, and stops at the first form that names exactly one
unit: id; code; the name or an alias as written (NFC, case-insensitive); the same without diacritics;
the same without the agency prefix ("UBND", "Ủy ban nhân dân") and the level word ("xã", "thị trấn",
"huyện"...). Diacritics matter before they are dropped: Nam Trà My has both "Trà Dơn" and "Trà Don",
so "Trà Dơn" is one unit and "tra don" is ambiguous (an error naming both, never a guess).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ioc.text import fold, nfc

_AGENCY = re.compile(r"^(ubnd|uy ban nhan dan|bo phan mot cua|bo phan tiep nhan va tra ket qua)\s+")
_LEVEL = re.compile(r"^(xa|phuong|thi tran|huyen|quan|thi xa|thanh pho|tinh)\s+")


def _exact(text: str) -> str:
    return " ".join(nfc(text).casefold().split())


def _bare(text: str) -> str:
    """Folded, without the agency prefix and the level word: "UBND xã Trà Sơn" -> "tra son"."""
    folded = fold(text)
    folded = _AGENCY.sub("", folded)
    return _LEVEL.sub("", folded)


class UnknownUnit(ValueError):
    """No unit, or more than one, goes by this name; the message says which."""


@dataclass
class UnitResolver:
    """Names -> unit ids over a set of units (``units`` rows or configuration units)."""

    ids: set[str] = field(default_factory=set)
    _forms: list[dict[str, set[str]]] = field(default_factory=lambda: [{}, {}, {}, {}])

    def add(self, unit_id: str, name: str | None, code: str | None = None, aliases: Iterable[str] = ()) -> None:
        self.ids.add(unit_id)
        by_code, by_exact, by_fold, by_bare = self._forms
        if code:
            by_code.setdefault(str(code).strip(), set()).add(unit_id)
        for text in [name or "", *aliases]:
            if not text:
                continue
            by_exact.setdefault(_exact(text), set()).add(unit_id)
            by_fold.setdefault(fold(text), set()).add(unit_id)
            by_bare.setdefault(_bare(text), set()).add(unit_id)

    def resolve(self, text: Any) -> str:
        """The id of the unit ``text`` names; :class:`UnknownUnit` when none or several do."""
        value = str(text or "").strip()
        if not value:
            raise UnknownUnit("no unit given")
        if value in self.ids:
            return value
        by_code, by_exact, by_fold, by_bare = self._forms
        for table, key in ((by_code, value), (by_exact, _exact(value)), (by_fold, fold(value)),
                           (by_bare, _bare(value))):  # fmt: skip
            found = table.get(key)
            if found and len(found) == 1:
                return next(iter(found))
            if found:
                raise UnknownUnit(f"{value!r} names several units ({', '.join(sorted(found))}); use the id or code")
        raise UnknownUnit(f"{value!r} is not a unit id, code, name or alias")

    def resolve_all(self, texts: Iterable[str] | None) -> list[str] | None:
        return None if texts is None else [self.resolve(t) for t in texts]

    @classmethod
    def from_database(cls, conn: Any) -> UnitResolver:
        """Over every unit of the ``units`` table (aliases and code live in ``properties``)."""
        resolver = cls()
        for unit_id, name, properties in conn.execute("SELECT id, name, properties FROM units ORDER BY id"):
            properties = properties or {}
            resolver.add(unit_id, name, properties.get("code"), properties.get("aliases") or ())
        for unit_id, name in conn.execute("SELECT unit_id, name FROM unit_names"):
            resolver.add(unit_id, None, None, [name])
        return resolver

    @classmethod
    def from_units(cls, units: Iterable[Any]) -> UnitResolver:
        """Over configuration units (:class:`ioc.district.models.Unit`)."""
        resolver = cls()
        for unit in units:
            resolver.add(unit.id, unit.name, unit.code, [*unit.aliases, *(f.name for f in unit.former_names)])
        return resolver
