"""The Vietnamese sentiment lexicon: accuracy on the shipped labelled set (tune and holdout splits,
reported by `ioc sentiment eval`), and the rules that make it readable: negation, intensifiers,
diacritic-free text, whole syllables only, topic tags."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ioc.sentiment import analyse, tag
from ioc.sentiment.evaluate import evaluate, load_examples

DATA = Path(__file__).resolve().parent / "data" / "sentiment_vi.tsv"


def test_the_labelled_set_is_large_balanced_and_has_a_holdout() -> None:
    examples = load_examples(DATA)
    assert len(examples) >= 150
    assert set(Counter(e.label for e in examples).values()) == {60}
    holdout = Counter(e.label for e in examples if e.split == "holdout")
    assert holdout == {"negative": 20, "neutral": 20, "positive": 20}
    assert len({e.text for e in examples}) == len(examples)  # no sentence twice


def test_accuracy_on_the_labelled_set_is_above_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    result = evaluate(load_examples(DATA))
    with capsys.disabled():
        print(f"\nsentiment: tune {result['tune_accuracy']}, holdout {result['holdout_accuracy']}, "
              f"majority baseline {result['majority_baseline_accuracy']}")  # fmt: skip
    assert result["holdout_accuracy"] >= 0.8  # sentences the lexicon was never adjusted on
    assert result["tune_accuracy"] >= 0.9
    assert result["holdout_accuracy"] > 2 * result["holdout_majority_baseline_accuracy"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Dịch vụ tốt", "positive"),
        ("Dịch vụ không tốt", "negative"),  # negation flips
        ("Chẳng hề vui chút nào", "negative"),
        ("Đường không an toàn cho học sinh", "negative"),
        ("Bà con không còn lo lắng", "positive"),
        ("dich vu cong rat tot", "positive"),  # typed without diacritics
        ("duong xau qua", "negative"),
        ("Kho bạc Nhà nước huyện thông báo lịch làm việc", "neutral"),  # "Kho" is not "khổ" in accented text
        ("Công an thông báo tuyển công dân tham gia nghĩa vụ", "neutral"),  # "gia" is not "giả"
        ("Huyện tổ chức hội nghị tổng kết", "neutral"),
    ],
)
def test_rules_of_the_lexicon(text: str, label: str) -> None:
    assert analyse(text).label == label, analyse(text)


def test_intensifiers_strengthen_and_the_verdict_names_its_phrases() -> None:
    plain, strong = analyse("Đường nguy hiểm"), analyse("Đường vô cùng nguy hiểm")
    assert strong.score < plain.score < 0
    assert [h.phrase for h in strong.hits] == ["nguy hiểm"]
    assert analyse("đẹp lắm").score > analyse("đẹp").score
    assert -1 <= strong.normalised <= 1


def test_topic_tags_come_from_keywords_with_or_without_diacritics() -> None:
    assert {"giao-thong", "thien-tai"} <= set(tag("Sạt lở taluy trên ĐT616"))
    assert "y-te" in tag("Trạm y tế thiếu thuốc")
    assert "giao-duc" in tag("hoc sinh nghi hoc vi lu")
    assert "y-te" not in tag("Dịch vụ công trực tuyến")  # "dịch vụ" is not an epidemic


def test_ioc_sentiment_eval_prints_one_json_line() -> None:
    out = subprocess.run([sys.executable, "-m", "ioc.cli.main", "sentiment", "eval"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent).stdout  # fmt: skip
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["examples"] >= 150 and 0 <= result["holdout_accuracy"] <= 1 and "ratio_to_majority_baseline" in result
