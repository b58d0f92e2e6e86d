"""Liveness, readiness and metrics: what a load balancer, an orchestrator and Prometheus ask."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ioc.http.state import AppState

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_database(state: AppState) -> str | None:
    try:
        with state.pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - the reason is reported, not raised
        return f"database unreachable: {exc.__class__.__name__}: {str(exc).strip()[:200]}"
    try:
        pending = state.migrations_pending()
    except Exception as exc:  # noqa: BLE001
        return f"cannot read migration state: {exc}"
    if pending:
        return f"migrations pending: {', '.join(pending)} (run `ioc db migrate`)"
    return None


def _check_broker(state: AppState) -> str | None:
    if state.mqtt is None:
        return "no broker configured"
    if not state.mqtt.connected:
        return f"broker unreachable at {state.mqtt.address.host}:{state.mqtt.address.port} ({state.mqtt.last_error})"
    return None


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable, migrations current",
    responses={503: {"description": "Not ready; `reasons` says why", "content": {"application/json": {}}}},
)
async def readyz(request: Request) -> JSONResponse:
    state: AppState = request.app.state.ioc
    db_problem, broker_problem = await asyncio.gather(
        asyncio.to_thread(_check_database, state), asyncio.to_thread(_check_broker, state)
    )
    reasons = [r for r in (db_problem, broker_problem) if r]
    checks = {"database": db_problem or "ok", "broker": broker_problem or "ok"}
    if reasons:
        return JSONResponse({"status": "unavailable", "checks": checks, "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
