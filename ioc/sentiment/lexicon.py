"""The sentiment lexicon (``lexicon_vi.yaml``) and the scorer.

How a text is scored, clause by clause (punctuation ends a clause):

1. Syllables are matched against one table of sentiment phrases, negators and intensifiers, the
   longest phrase first, so "không an toàn" or "hết sức" are read as written.
2. A sentiment phrase counts its weight (+ positive, − negative), multiplied by an intensifier
   right before it ("rất", "vô cùng") or right after it ("lắm", "quá"), and flipped (times
   ``negation_factor``) when a negator ("không", "chưa", "chẳng"...) comes at most
   ``negation_window`` syllables before it in the same clause.
3. The sum over the text is the score: at or above ``positive_at`` positive, at or below
   ``negative_at`` negative, neutral in between (including no phrase at all).

:class:`Verdict` keeps the phrases that counted, so the wall can show *why* a mention is negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from ioc.sentiment.tokens import Match, PhraseTable, clauses, without_diacritics

LEXICON_FILE = Path(__file__).with_name("lexicon_vi.yaml")
Label = Literal["negative", "neutral", "positive"]
# Intensifiers that strengthen the phrase *before* them ("tốt lắm", "đẹp quá").
_AFTER = {"lắm", "quá"}


@dataclass(frozen=True)
class Hit:
    phrase: str
    weight: float  # signed, after intensifiers and negation


@dataclass(frozen=True)
class Verdict:
    label: Label
    score: float  # the summed weights
    hits: list[Hit] = field(default_factory=list)

    @property
    def normalised(self) -> float:
        """The score squeezed into [-1, 1] (tanh of score / 2), for display and storage."""
        return round(math.tanh(self.score / 2), 4)


@dataclass(frozen=True)
class _Entry:
    kind: Literal["sentiment", "negator", "intensifier"]
    weight: float


class Lexicon:
    def __init__(self, data: dict[str, Any]) -> None:
        items: list[tuple[str, _Entry]] = []
        items += [(p, _Entry("negator", 1.0)) for p in data.get("negators", [])]
        items += [(p, _Entry("intensifier", float(w))) for p, w in (data.get("intensifiers") or {}).items()]
        # Sentiment phrases last: on the same syllables they win over a negator or intensifier entry.
        items += [(p, _Entry("sentiment", float(w))) for p, w in (data.get("positive") or {}).items()]
        items += [(p, _Entry("sentiment", -float(w))) for p, w in (data.get("negative") or {}).items()]
        self.table: PhraseTable[_Entry] = PhraseTable(items)
        self.negation_window = int(data.get("negation_window", 3))
        self.negation_factor = float(data.get("negation_factor", 0.8))
        self.positive_at = float(data.get("positive_at", 1.0))
        self.negative_at = float(data.get("negative_at", -1.0))
        self.size = sum(len(data.get(k) or {}) for k in ("positive", "negative"))

    @classmethod
    def from_file(cls, path: str | Path = LEXICON_FILE) -> Lexicon:
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")))

    def _clause(self, syllables: list[str], bare: bool) -> list[Hit]:
        found: list[Match[_Entry]] = list(self.table.matches(syllables, bare))
        hits = []
        for index, match in enumerate(found):
            if match.value.kind != "sentiment":
                continue
            weight = match.value.weight
            before = found[index - 1] if index > 0 else None
            after = found[index + 1] if index + 1 < len(found) else None
            if before and before.value.kind == "intensifier" and before.end >= match.start - 1:
                weight *= before.value.weight
            elif after and after.value.kind == "intensifier" and after.phrase in _AFTER and after.start == match.end:
                weight *= after.value.weight
            for earlier in reversed(found[:index]):
                if earlier.value.kind == "sentiment":
                    break  # a negator before another sentiment phrase belongs to that one
                if earlier.value.kind == "negator":
                    if match.start - earlier.end < self.negation_window:
                        weight = -weight * self.negation_factor
                    break
            hits.append(Hit(match.phrase, round(weight, 4)))
        return hits

    def analyse(self, text: str) -> Verdict:
        parts = clauses(text)
        bare = without_diacritics(parts)
        hits = [hit for clause in parts for hit in self._clause(clause, bare)]
        score = round(sum(h.weight for h in hits), 4)
        label: Label = "neutral"
        if score >= self.positive_at:
            label = "positive"
        elif score <= self.negative_at:
            label = "negative"
        return Verdict(label, score, hits)


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return Lexicon.from_file()


def analyse(text: str) -> Verdict:
    """The verdict of the shipped lexicon on ``text``."""
    return default_lexicon().analyse(text)
