"""Docs that are generated from code must not drift from it."""

from __future__ import annotations

from ioc.readme_sync import README, render


def test_readme_settings_table_matches_the_settings_model() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README settings table is stale: run `python -m ioc.readme_sync`"


def test_readme_quick_start_is_exactly_make_up_and_make_test() -> None:
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick_start.strip().splitlines() == ["make up", "make test"]
