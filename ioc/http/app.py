"""The FastAPI application factory.

`create_app` only wires things together: routers come from ``ioc.http.routes``, shared state is
built in the lifespan, the pages are static files from ``dashboards`` that talk to the API over
HTTP and websockets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import ioc
from ioc.http import access, logredact
from ioc.http.apidocs import install_api_docs
from ioc.http.errors import document_problems_in_openapi, install_error_handlers
from ioc.http.guards import install_guard
from ioc.http.routes import alerts, auth, health, kpi, live, open311, places, reports, staff_reports, users
from ioc.http.routes import incidents as incident_routes
from ioc.http.routes import oncall as oncall_routes
from ioc.http.routes import radio as radio_routes
from ioc.http.routes import readings as reading_routes
from ioc.http.routes import sectors as sector_routes
from ioc.http.routes import ui as ui_routes
from ioc.http.routes import warnings as warning_routes
from ioc.http.security import install_security
from ioc.http.state import AppState
from ioc.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0
# A request waits at most this long for a pooled connection, then 503 (not 30 s and a 500).
POOL_TIMEOUT_S = 2.0
STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "dashboards" / "static"


async def _maintain_forever(state: AppState) -> None:
    """Partitions ahead and retention on the native backend; hourly, never fatal."""
    from ioc.clock import SystemClock
    from ioc.storage import timeseries

    def run_once() -> str:
        with state.pool.connection() as conn:
            return timeseries.maintain(conn, SystemClock(), state.settings).summary()

    while True:
        try:
            log.info("time-series maintenance: %s", await asyncio.to_thread(run_once))
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("time-series maintenance failed")
        await asyncio.sleep(MAINTENANCE_INTERVAL_S)


ESCALATION_INTERVAL_S = 15.0


async def _escalate_forever(state: AppState) -> None:
    """Escalate unacknowledged alerts past their deadline. Every API replica may run this: the due
    rows are taken with SKIP LOCKED, so each alert escalates once."""
    from ioc.alerts.escalation import escalate_due
    from ioc.alerts.rules import load_rulebook
    from ioc.clock import SystemClock

    if state.settings.alert_rules is None:
        return
    policies = load_rulebook(state.settings.alert_rules).escalation_policies()

    def run_once() -> int:
        with state.pool.connection() as conn, conn.transaction():
            return len(escalate_due(conn, SystemClock().now(), policies))

    while True:
        try:
            escalated = await asyncio.to_thread(run_once)
            if escalated:
                log.info("escalated %d alert(s)", escalated)
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("alert escalation failed")
        await asyncio.sleep(ESCALATION_INTERVAL_S)


PAGING_INTERVAL_S = 2.0


async def _page_forever(state: AppState) -> None:
    """Send the on-call pages queued by escalation and by severe alerts (SKIP LOCKED: every replica
    may run this; a page goes once)."""
    from ioc.clock import SystemClock
    from ioc.oncall.pages import SendContext, send_due

    settings = state.settings
    ctx = SendContext(Path(settings.var_dir), settings.smtp_url, settings.smtp_from, settings.vapid_subject)
    while True:
        try:
            sent = await asyncio.to_thread(send_due, state.pool.connection, ctx, SystemClock().now())
            if sent:
                log.info("sent %d on-call page(s)", sent)
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("on-call paging failed")
        await asyncio.sleep(PAGING_INTERVAL_S)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.database_url:
        raise RuntimeError("IOC_DATABASE_URL is not set (use `ioc up` to run with an embedded database)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ioc.mqtt import MqttLink, broker_address
        from ioc.storage.db import make_pool

        pool = make_pool(settings.database_url, application_name="ioc-api", timeout=POOL_TIMEOUT_S)
        pool.open(wait=False)
        link = None
        if settings.mqtt_url:
            link = MqttLink(broker_address(settings.mqtt_url), client_id="")
            link.start()
        from ioc.hub.hub import Hub
        from ioc.hub.listener import listen_forever

        state = AppState(settings=settings, database_url=settings.database_url, pool=pool, mqtt=link)
        app.state.ioc = state
        app.state.hub = Hub()
        hub_ready = asyncio.Event()
        app.state.hub_ready = hub_ready
        from ioc.http.dbwatch import DatabaseWatch

        app.state.db_watch = DatabaseWatch(settings.database_url, app.state.hub)
        await app.state.db_watch.check()  # known before the first request: down at start answers 503 too
        from ioc.reports.media_pool import media_pool

        media_pool(app).warm()
        tasks = [
            asyncio.create_task(app.state.db_watch.run_forever()),
            asyncio.create_task(_maintain_forever(state)),
            asyncio.create_task(_escalate_forever(state)),
            asyncio.create_task(_page_forever(state)),
            asyncio.create_task(listen_forever(settings.database_url, app.state.hub, ready=hub_ready)),
        ]
        # What start-up built lives as long as the process: out of the collector's sight, a full
        # collection no longer walks the whole app (a pause every live-stream client would feel).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # collectable again (tests start many apps in one process)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if link is not None:
                link.stop()
            pool.close()
            from ioc.http.media_intake import shutdown_upload_threads
            from ioc.reports.media_pool import shutdown_media_pool

            shutdown_media_pool(app)
            shutdown_upload_threads(app)

    app = FastAPI(
        title="IOC – Trung tâm điều hành thông minh",
        version=ioc.__version__,
        description=(
            "HTTP API of the Intelligent Operations Center. Health: `/healthz` (alive), `/readyz` "
            "(database and broker reachable, migrations current), `/metrics` (Prometheus)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)
    install_error_handlers(app)
    install_security(app, settings.cors_origins, settings.map_tile_url)
    logredact.install()  # no token or tracking code in uvicorn's access log (issue #15)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(alerts.router)
    app.include_router(places.router)
    app.include_router(reports.router)
    app.include_router(staff_reports.router)
    app.include_router(kpi.router)
    app.include_router(sector_routes.router)
    app.include_router(radio_routes.router)
    app.include_router(incident_routes.router)
    app.include_router(reading_routes.router)
    app.include_router(oncall_routes.router)
    app.include_router(warning_routes.router)
    app.include_router(open311.router)
    app.include_router(open311.discovery_router)
    app.include_router(live.router)
    app.include_router(ui_routes.router)
    document_problems_in_openapi(app)
    install_guard(app, pre_checks=[("POST", r"/api/public/reports", reports.submit_pre_check)])
    ui_routes.mount_vendor(app)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="pages")
    if undeclared := access.undeclared(app):  # tests/test_access_routes.py fails on these
        log.warning("routes without an access rule in ioc/http/access.py: %s", ", ".join(undeclared))
    return app
