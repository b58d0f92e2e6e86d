"""``ioc bench ...``: one benchmark per pipeline, each printing one flat JSON line.

Every benchmark measures its baselines side by side in the same run and reports
``ratio_to_<baseline>``; see docs/performance.md for the figures and how to read them.
Each pipeline registers its command here from its own module.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: one JSON line each, baselines measured in the same run.", no_args_is_help=True)

from ioc.cli.ingest_cmd import bench_ingest  # noqa: E402

app.command("ingest")(bench_ingest)
