"""Accuracy of the lexicon on a labelled set (``tests/data/sentiment_vi.tsv``: label, split, text).

The set has two splits: ``tune``, the sentences the lexicon was built and adjusted on, and
``holdout``, written at the same time and never used to adjust it; the holdout accuracy is the
honest estimate. A majority-class baseline is measured side by side, so the numbers say how much the
lexicon adds over always answering the most common label.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioc.sentiment.lexicon import Lexicon, default_lexicon


@dataclass(frozen=True)
class Example:
    label: str
    split: str
    text: str


def load_examples(path: str | Path) -> list[Example]:
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [Example(r["label"], r["split"], r["text"]) for r in csv.DictReader(handle, delimiter="\t")]


def evaluate(examples: list[Example], lexicon: Lexicon | None = None) -> dict[str, Any]:
    """One flat dict: accuracies overall and per split, the baseline, per-class recall, speed."""
    lexicon = lexicon or default_lexicon()
    started = time.perf_counter()
    predicted = [lexicon.analyse(e.text).label for e in examples]
    elapsed = time.perf_counter() - started
    majority = Counter(e.label for e in examples if e.split == "tune").most_common(1)[0][0]

    def accuracy(split: str | None, answers: list[str]) -> float | None:
        pairs = [(e, a) for e, a in zip(examples, answers, strict=True) if split is None or e.split == split]
        return round(sum(e.label == a for e, a in pairs) / len(pairs), 4) if pairs else None

    baseline = [majority] * len(examples)
    out: dict[str, Any] = {
        "examples": len(examples),
        "tune_examples": sum(e.split == "tune" for e in examples),
        "holdout_examples": sum(e.split == "holdout" for e in examples),
        "lexicon_phrases": lexicon.size,
        "accuracy": accuracy(None, predicted),
        "tune_accuracy": accuracy("tune", predicted),
        "holdout_accuracy": accuracy("holdout", predicted),
        "majority_baseline_accuracy": accuracy(None, baseline),
        "holdout_majority_baseline_accuracy": accuracy("holdout", baseline),
    }
    held, base = out["holdout_accuracy"], out["holdout_majority_baseline_accuracy"]
    if held is not None and base:
        out["ratio_to_majority_baseline"] = round(held / base, 3)
    for label in ("negative", "neutral", "positive"):
        hits = [a == label for e, a in zip(examples, predicted, strict=True) if e.label == label]
        out[f"{label}_recall"] = round(sum(hits) / len(hits), 4) if hits else None
    out["us_per_text"] = round(elapsed / max(1, len(examples)) * 1e6, 1)
    return out
