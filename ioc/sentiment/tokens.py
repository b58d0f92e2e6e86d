"""Syllables of Vietnamese text, and longest-phrase matching over them with a diacritic-free fallback.

Vietnamese words are made of syllables separated by spaces ("an toàn", "sạt lở"), so phrases are
matched as sequences of whole syllables, never as substrings ("tốt" must not match inside "tốtx").
Social-media text is often typed without diacritics ("duong qua te"): a text in which no syllable
carries a diacritic is looked up in the folded form of the phrases (:func:`ioc.text.fold`). Text
written with its diacritics is matched exactly, so "tột" is not taken for "tốt", nor the "Kho" of
"Kho bạc" for "khổ".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ioc.text import fold, nfc

_CLAUSE = re.compile(r"[.,;:!?…\n()\[\]\"“”]+")
_SYLLABLE = re.compile(r"\w+", re.UNICODE)
T = TypeVar("T")


def clauses(text: str) -> list[list[str]]:
    """The text's clauses (split at punctuation), each a list of lower-case NFC syllables."""
    out = []
    for part in _CLAUSE.split(nfc(text).lower()):
        syllables = _SYLLABLE.findall(part)
        if syllables:
            out.append(syllables)
    return out


def without_diacritics(parts: list[list[str]]) -> bool:
    """Whether no syllable of the text carries a diacritic (nor đ): typed on a bare keyboard."""
    return all(fold(s) == s for clause in parts for s in clause)


def phrase_key(phrase: str) -> tuple[str, ...]:
    return tuple(_SYLLABLE.findall(nfc(phrase).lower()))


@dataclass(frozen=True)
class Match(Generic[T]):
    start: int  # index of the first syllable in its clause
    end: int  # index after the last syllable
    phrase: str
    value: T


class PhraseTable(Generic[T]):
    """Phrases (with a value each), matched longest first; folded keys serve diacritic-free text."""

    def __init__(self, items: Iterable[tuple[str, T]]) -> None:
        self.exact: dict[tuple[str, ...], tuple[str, T]] = {}
        self.folded: dict[tuple[str, ...], tuple[str, T]] = {}
        for phrase, value in items:
            key = phrase_key(phrase)
            if not key:
                continue
            self.exact[key] = (phrase, value)
            self.folded.setdefault(tuple(fold(s) for s in key), (phrase, value))
        self.longest = max((len(k) for k in self.exact), default=0)

    def lookup(self, syllables: list[str], start: int, length: int, bare: bool = False) -> tuple[str, T] | None:
        key = tuple(syllables[start : start + length])
        if len(key) != length:
            return None
        return (self.folded if bare else self.exact).get(key)

    def matches(self, syllables: list[str], bare: bool = False) -> Iterator[Match[T]]:
        """Non-overlapping matches, left to right, the longest phrase at each position; ``bare``:
        the text has no diacritics, match the folded phrases."""
        i = 0
        while i < len(syllables):
            for length in range(min(self.longest, len(syllables) - i), 0, -1):
                found = self.lookup(syllables, i, length, bare)
                if found is not None:
                    yield Match(i, i + length, found[0], found[1])
                    i += length
                    break
            else:
                i += 1
