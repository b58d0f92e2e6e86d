"""Topic tags of a mention by keyword lists (``topics_vi.yaml``): giao thông, an ninh, y tế, giáo
dục, môi trường, thiên tai, dịch vụ công... A mention gets every tag one of whose keywords occurs in
it as whole syllables (with or without diacritics); keyword lists are data, edited without code."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ioc.sentiment.tokens import PhraseTable, clauses, without_diacritics

TOPICS_FILE = Path(__file__).with_name("topics_vi.yaml")


class TopicTagger:
    def __init__(self, data: dict[str, dict]) -> None:
        self.names = {tag: spec["name"] for tag, spec in data.items()}
        by_phrase: dict[str, set[str]] = {}
        for tag, spec in data.items():
            for keyword in spec.get("keywords", []):
                by_phrase.setdefault(str(keyword), set()).add(tag)
        items = list(by_phrase.items())
        self.table: PhraseTable[set[str]] = PhraseTable(items)

    @classmethod
    def from_file(cls, path: str | Path = TOPICS_FILE) -> TopicTagger:
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")))

    def tags(self, text: str) -> list[str]:
        found: set[str] = set()
        parts = clauses(text)
        bare = without_diacritics(parts)
        for clause in parts:
            for match in self.table.matches(clause, bare):
                found |= match.value
        return sorted(found)


@lru_cache(maxsize=1)
def default_tagger() -> TopicTagger:
    return TopicTagger.from_file()


def tag(text: str) -> list[str]:
    """The topic tags of ``text`` with the shipped keyword lists."""
    return default_tagger().tags(text)
