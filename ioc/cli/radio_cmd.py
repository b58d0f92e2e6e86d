"""``ioc radio ...``: the radio service and a simulated fleet of loudspeaker clusters."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Annotated

import typer

from ioc.cli import exit_codes

Ids = list[str] | None  # a repeatable option

app = typer.Typer(help="IP public-address radio: `serve` the radio service, run a simulated `fleet` (docs/radio.md).")


@app.command()
def serve(
    worker_id: str = typer.Option("0", help="Stable id of this service (MQTT client id ioc-radio-<host>-<id>)."),
    tick_ms: float = typer.Option(200.0, min=10, help="How often due commands, time-outs and CAP are handled."),
) -> None:
    """Send radio commands (with retries), follow acks, playback and status, finish broadcasts with
    their proof and alerts, and turn CAP alerts into broadcasts. Run several: acks and events are
    split through the shared subscription $share/IOC_RADIO_SHARE_GROUP/...

    Example: IOC_DATABASE_URL=postgresql://ioc@db/ioc IOC_MQTT_URL=mqtt://mq:1883 ioc radio serve
    """
    from ioc import logs
    from ioc.mqtt import broker_address
    from ioc.radio.policy import policies
    from ioc.radio.service import RadioService
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, "radio")
    if not settings.database_url or not settings.mqtt_url:
        typer.echo("IOC_DATABASE_URL and IOC_MQTT_URL must be set (`ioc up` sets both).", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    radio, cap = policies(settings)
    service = RadioService(
        settings.database_url,
        broker_address(settings.mqtt_url),
        policy=radio,
        cap=cap,
        root=settings.mqtt_topic_root,
        share_group=settings.radio_share_group or None,
        client_id=f"ioc-radio-{socket.gethostname()}-{worker_id}",
        tick_s=tick_ms / 1000.0,
    )
    signal.signal(signal.SIGTERM, lambda *_: service.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: service.stopping.set())
    try:
        code = service.run()
    finally:
        service.stop()
    raise typer.Exit(code)


@app.command()
def fleet(
    time_scale: float = typer.Option(1.0, min=0.01, help="Simulated audio seconds per real second."),
    offline: Annotated[Ids, typer.Option(help="Cluster ids that drop off at start ")] = None,
    reject: Annotated[Ids, typer.Option(help="Cluster ids that reject every command ")] = None,
    stop_halfway: Annotated[Ids, typer.Option(help="Cluster ids that stop half-way through ")] = None,
    lose_power: Annotated[Ids, typer.Option(help="Cluster ids that lose power half-way ")] = None,
) -> None:
    """Run the district's loudspeaker clusters as simulated devices (MQTT 5, Last Will, retained
    status, commands, scaled real-time playback, stored week) until stopped.

    Example: ioc radio fleet --offline radio-tra-kot-3 --stop-halfway radio-tra-kot-2
    """
    from feeds.radio.device import Faults
    from feeds.radio.fleet import RadioFleet
    from ioc import logs
    from ioc.district.loader import load_district
    from ioc.mqtt import broker_address
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, "radio-fleet")
    if not settings.mqtt_url:
        typer.echo("IOC_MQTT_URL is not set; run `ioc up` for an embedded broker.", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    faults = {c: Faults(offline=True) for c in offline or []}
    faults |= {c: Faults(reject="simulated fault: amplifier disabled") for c in reject or []}
    faults |= {c: Faults(stop_at=0.5) for c in stop_halfway or []}
    faults |= {c: Faults(lose_power_at=0.5, power_off_s=5.0) for c in lose_power or []}
    district = load_district(settings.district_config)
    radios = RadioFleet.from_district(district, broker_address(settings.mqtt_url), root=settings.mqtt_topic_root,
                                      time_scale=time_scale, faults=faults)  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    radios.start()
    try:
        stop.wait()
    finally:
        radios.stop()
