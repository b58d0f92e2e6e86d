"""``ioc bench ...``: one benchmark per pipeline, each printing one flat JSON line.

Every benchmark measures its baselines side by side in the same run and reports
``ratio_to_<baseline>``; see docs/performance.md for the figures and how to read them.
Each pipeline registers its command here from its own module.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: one JSON line each, baselines measured in the same run.", no_args_is_help=True)


def progress(as_json: bool, what: str):  # noqa: ANN201 - a context manager
    """A spinner on stderr while a bench runs (none with --json, whose stdout is one line)."""
    import contextlib

    from rich.console import Console

    return contextlib.nullcontext() if as_json else Console(stderr=True).status(what)


from ioc.cli.ingest_cmd import bench_ingest  # noqa: E402

app.command("ingest")(bench_ingest)


@app.command("alerts")
def bench_alerts(
    clients: int = typer.Option(100, min=1, help="Websocket clients that read every event."),
    rate: float = typer.Option(50.0, min=0.1, help="Camera events (each a new alert) published per second."),
    alerts: int = typer.Option(500, min=1, help="Events to publish."),
    stalled: int = typer.Option(1, min=0, help="Extra clients that never read (they must not delay the others)."),
    replicas: int = typer.Option(1, min=1, max=8, help="`ioc serve` processes; clients spread over them."),
    proxy: bool = typer.Option(False, help="Put HAProxy (deploy/haproxy/ioc.cfg, TLS) in front of the replicas."),
    deflate_baseline: bool = typer.Option(False, help="Also run with per-client websocket compression (baseline)."),
    client_processes: int = typer.Option(1, min=1, max=16, help="Processes that share the websocket clients."),
    ws_baseline: str = typer.Option(
        "", help="Also run on this uvicorn websocket implementation (websockets, wsproto)."
    ),
    ingest_wait_ms: float = typer.Option(50.0, min=0, help="The ingest worker's --batch-wait-ms (its default: 50)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON line."),
) -> None:
    """Publish-to-wall latency of alerts through ingest, the alert engine and the websocket hub, with
    the bare MQTT publish-to-subscriber latency measured in the same run.

    Example: ioc bench alerts --clients 1000 --rate 200 --alerts 2000 --json
    """
    import json

    from ioc import logs
    from ioc.cli import exit_codes
    from ioc.cli.bench_alerts import run_bench
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure("WARNING" if as_json else settings.log_level, "bench")
    try:
        with progress(as_json, f"alerts bench: {clients} clients, {alerts} events at {rate:g}/s..."):
            result = run_bench(settings, clients=clients, rate=rate, alerts=alerts, stalled=stalled,
                               replicas=replicas, proxy=proxy, deflate_baseline=deflate_baseline,
                               client_processes=client_processes, ws_baseline=ws_baseline or None,
                               ingest_wait_ms=ingest_wait_ms)  # fmt: skip
    except ConnectionError as exc:
        typer.echo(f"bench: {exc}", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    typer.echo(json.dumps(result))


@app.command("detect")
def bench_detect(
    video: str = typer.Option("", help="Video file (default: the sample vtest.avi, fetched and verified once)."),
    cameras: int = typer.Option(2, min=1, help="Cameras playing the video at once (batched inference)."),
    frames: int = typer.Option(200, min=10, help="Frames per camera."),
    input_size: int = typer.Option(416, help="Network input size (multiple of 32)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON line."),
    regions: bool = typer.Option(False, help="Region mode: square crops around motion and tracks."),
) -> None:
    """Detector pipeline frames/s, inferences/s, gated share, CPU and frame-to-event latency, with the
    decode-only and bare onnxruntime baselines measured step by step on the same frames, and per-box
    recall and precision on the labelled frames camera 0 passes.

    Example: ioc bench detect --cameras 4 --frames 300 --json
    """
    import json
    from pathlib import Path

    from detectors import bench
    from detectors.media import vtest_video
    from detectors.model_store import ModelUnavailable
    from ioc import logs
    from ioc.cli import exit_codes

    logs.configure("WARNING" if as_json else "INFO", "bench")
    try:
        path = Path(video) if video else vtest_video()
        with progress(as_json, f"detect bench: {cameras} cameras x {frames} frames..."):
            result = bench.run(path, cameras=cameras, frames=frames, input_size=input_size, regions=regions)
    except ModelUnavailable as exc:
        typer.echo(f"bench: {exc}", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    typer.echo(json.dumps(result))


@app.command("reports")
def bench_reports(
    concurrency: int = typer.Option(4, min=1, help="Client threads posting at once."),
    photo_mb: float = typer.Option(2.0, min=0.05, max=9.5, help="Size of the photo sent with each report (MB)."),
    reports: int = typer.Option(100, min=1, help="Reports to post (to each server)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON line."),
) -> None:
    """Citizen report submissions with a photo (checked, EXIF stripped, stored, routed, alert raised)
    against a bare FastAPI endpoint that only receives the same multipart body, in the same run.

    Example: ioc bench reports --concurrency 8 --photo-mb 3 --json
    """
    import json

    from ioc import logs
    from ioc.cli import exit_codes
    from ioc.cli.bench_reports import run_bench
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure("WARNING" if as_json else settings.log_level, "bench")
    try:
        with progress(as_json, f"reports bench: {reports} reports with {photo_mb:g} MB photos..."):
            result = run_bench(settings, concurrency=concurrency, photo_mb=photo_mb, reports=reports)
    except ConnectionError as exc:
        typer.echo(f"bench: {exc}", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    typer.echo(json.dumps(result))


@app.command("kpi")
def bench_kpi(
    dossiers: int = typer.Option(100_000, min=100, help="Dossiers to generate (with their events) over 5 months."),
    tile_runs: int = typer.Option(200, min=1, help="Timed runs of the tile query from the rollup."),
    raw_runs: int = typer.Option(5, min=1, help="Timed runs of the same figures counted from the raw rows."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON line."),
) -> None:
    """The wall's dossier KPI tiles (all units, a 5-month period and the previous one) from the daily
    rollup, against the same figures counted from the raw dossier rows in the same run; both
    p50/p99, their ratio and whether every figure is equal.

    Example: ioc bench kpi --dossiers 1000000 --json
    """
    import json

    from ioc import logs
    from ioc.cli.bench_kpi import run_bench
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure("WARNING" if as_json else settings.log_level, "bench")
    with progress(as_json, f"kpi bench: {dossiers} dossiers..."):
        result = run_bench(settings, dossiers=dossiers, tile_runs=tile_runs, raw_runs=raw_runs)
    typer.echo(json.dumps(result))
    if not result["equal"]:
        raise typer.Exit(1)
