"""``python -m ingest``: the same worker as ``ioc ingest`` (used by tests and the bench)."""

import typer

from ioc.cli.ingest_cmd import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
