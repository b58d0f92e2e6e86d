"""Vietnamese text helpers: one normal form for storage, one folded form for search.

Vietnamese letters can be typed precomposed (``ồ`` as one code point) or decomposed (``o`` + two
combining marks); keyboards, phones and PDFs produce both. Text is stored in NFC so equal names are
equal strings. Search columns (``units.name_search``, ``alerts.title_search``...) hold the folded
form so that "tra kot", "Trà Kót" and "TRA KOT" find the same rows, computed here rather than with
PostgreSQL's ``unaccent()``, which is not immutable and does not map ``đ`` in every configuration.
"""

from __future__ import annotations

import unicodedata

# đ/Đ is a letter of its own, not d + a combining mark: NFD leaves it whole, so it is mapped explicitly.
_LETTER_MAP = str.maketrans({"đ": "d", "Đ": "d"})


def nfc(text: str) -> str:
    """``text`` in Unicode NFC (precomposed), the form ioc stores."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """The search form of ``text``: lower case, no diacritics, ``đ`` → ``d``, spaces collapsed.

    >>> fold("Thị trấn Trà My")
    'thi tran tra my'
    >>> fold("ĐỒNG")
    'dong'
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_LETTER_MAP))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(unicodedata.normalize("NFC", bare).casefold().split())


def contains_pattern(query: str) -> str | None:
    """A ``LIKE`` pattern that finds ``query`` inside a folded search column, or None for an empty
    query. ``%`` and ``_`` typed by the user match themselves."""
    folded = fold(query)
    if not folded:
        return None
    return "%" + folded.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
