"""Which unit a mention is about, from the unit names in its words.

Names are matched as whole syllables without diacritics, longest first, so "Bắc Trà My" (the
district) is not also read as "Trà My" (the town). A mention that names exactly one current leaf
unit (a commune) is about it; one that names none, or several, stays with the unit its source
watches.
"""

from __future__ import annotations

import time

import psycopg

from ioc.sentiment.tokens import PhraseTable, clauses
from ioc.text import fold


class UnitNames:
    def __init__(self, refresh_s: float = 300.0) -> None:
        self.refresh_s = refresh_s
        self._table: PhraseTable[tuple[str, bool]] | None = None
        self._loaded = float("-inf")

    def _load(self, conn: psycopg.Connection) -> PhraseTable[tuple[str, bool]]:
        if self._table is None or time.monotonic() - self._loaded > self.refresh_s:
            rows = conn.execute(
                "SELECT u.id, u.name, NOT EXISTS (SELECT 1 FROM units c WHERE c.parent_id = u.id"
                " AND c.valid_to IS NULL) FROM units u WHERE u.valid_to IS NULL"
            ).fetchall()
            self._table = PhraseTable((fold(name), (unit_id, leaf)) for unit_id, name, leaf in rows)
            self._loaded = time.monotonic()
        return self._table

    def unit_of(self, conn: psycopg.Connection, text: str) -> str | None:
        """The one leaf unit ``text`` names, or None."""
        table = self._load(conn)
        named = {
            match.value[0]
            for clause in clauses(fold(text))
            for match in table.matches(clause, bare=True)
            if match.value[1]
        }
        return named.pop() if len(named) == 1 else None
