"""``ioc``: run the system, its workers and its tools.

Heavy imports happen inside each command so that ``ioc --help`` answers at once.
"""

from __future__ import annotations

import typer

import ioc.cli.district_cmd as district_cmd
from ioc.cli import (
    bench,
    config_cmd,
    db_cmd,
    detect_cmd,
    incidents_cmd,
    ingest_cmd,
    kpi_cmd,
    radio_cmd,
    sentiment_cmd,
    users_cmd,
)
from ioc.cli.broker_cmd import app as broker_app
from ioc.cli.doctor_cmd import register as register_doctor
from ioc.cli.processes import register as register_processes
from ioc.cli.warnings_cmd import app as warnings_app

app = typer.Typer(
    name="ioc",
    help=(
        "Intelligent Operations Center backend (Trung tâm điều hành thông minh).\n\n"
        "Quick start: `ioc up` runs everything on embedded defaults; the wall is at http://127.0.0.1:8000.\n\n"
        "Exit codes: 0 ok, 1 the command found problems, 2 usage error, 3 a dependency was unreachable."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(bench.app, name="bench")
app.add_typer(users_cmd.app, name="users")
app.add_typer(kpi_cmd.app, name="kpi")
app.add_typer(sentiment_cmd.app, name="sentiment")
app.add_typer(radio_cmd.app, name="radio")
app.add_typer(broker_app, name="broker")
app.add_typer(incidents_cmd.app, name="incidents")
app.add_typer(district_cmd.app, name="district")
app.add_typer(warnings_app, name="warnings")
register_processes(app)
ingest_cmd.register(app)
detect_cmd.register(app)
register_doctor(app)


if __name__ == "__main__":  # pragma: no cover
    app()
