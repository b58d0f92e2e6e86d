"""`ioc bench kpi` prints one JSON line: rollup tiles and the raw baseline, their ratio, and equality."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


def test_bench_kpi_prints_one_json_line_with_the_raw_baseline(
    pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ioc.cli.bench import app
    from ioc.settings import get_settings

    monkeypatch.setenv("IOC_DATABASE_URL", pg_admin_url)  # the bench makes (and drops) its own database there
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["kpi", "--dossiers", "500", "--tile-runs", "5", "--raw-runs", "2", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["bench"] == "kpi" and line["dossiers"] == 500 and line["units"] == 13
    assert line["equal"] is True and line["sample_refold_mismatches"] == 0
    assert line["events"] > 500 and line["rollup_rows"] > 0
    for key in ("tiles_p50_ms", "tiles_p99_ms", "raw_p50_ms", "raw_p99_ms", "ratio_to_raw_p50", "ratio_to_raw_p99"):
        assert isinstance(line[key], float) and line[key] > 0, key
