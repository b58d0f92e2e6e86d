"""Reference counts of stored media files: a file goes only when nobody uses it.

Photos are stored once by content hash, so the same file can back a staff member's photo, a
citizen's report and an upload that is about to be refused. Every store takes a reference
(:func:`hold`) *before* the file is moved into place; a refused or deleted record gives its
reference back (:func:`release`), and the file is unlinked only when the count reaches zero, with
the row locked, so a concurrent :func:`hold` of the same file waits and then writes it again.
References of stored records are never released here: the record holds them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psycopg


def hold(conn: psycopg.Connection, keys: list[str]) -> None:
    """One more reference to each key (call in a transaction that commits before the file is used)."""
    for key in sorted(set(keys)):
        conn.execute(
            """INSERT INTO media_refs (storage_key, refs) VALUES (%s, 1)
               ON CONFLICT (storage_key) DO UPDATE SET refs = media_refs.refs + 1, updated_at = now()""",
            (key,),
        )


def release(conn: psycopg.Connection, keys: list[str], media_root: Path) -> list[str]:
    """One reference fewer to each key; unlink files nobody holds any more. Returns the removed keys."""
    removed = []
    for key in sorted(set(keys)):
        row = conn.execute(
            "UPDATE media_refs SET refs = refs - 1, updated_at = now() WHERE storage_key = %s AND refs > 0"
            " RETURNING refs",
            (key,),
        ).fetchone()
        if row is not None and row[0] == 0:
            conn.execute("DELETE FROM media_refs WHERE storage_key = %s", (key,))
            with contextlib.suppress(FileNotFoundError):
                (media_root / key).unlink()
            removed.append(key)
    return removed


def place(parts: dict[str, str], media_root: Path) -> None:
    """Move prepared files (key -> partial path) into place, atomically; a file already there has
    the same bytes (content-addressed), so the partial copy is dropped."""
    for key, partial in parts.items():
        target = media_root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)


def discard_parts(parts: dict[str, str]) -> None:
    for partial in parts.values():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
