"""``ioc broker ...``: confine every device and service on the broker (docs/broker.md, "Confined devices").

The commands and their options are a stable interface (deployment scripts call them):

* ``ioc broker generate --out DIR [--secrets DIR] [--no-plaintext] [--tls-dir DIR] [--client-cert-port N]``
* ``ioc broker certs --out DIR [--host NAME]... [--client ACCOUNT]...``
* ``ioc broker rotate ACCOUNT... | --all-devices | --all  [--secrets DIR] [--out DIR]``
* ``ioc broker credentials ACCOUNT [--secrets DIR]``
* ``ioc broker accounts``
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ioc.cli import exit_codes

app = typer.Typer(help="Broker accounts, ACL, passwords and TLS from the district file (docs/broker.md).")

SECRETS_HELP = "Directory of the accounts' passwords (<account>.password, 0600). Default: IOC_VAR_DIR/broker-secrets."
Names = list[str] | None


def _district():  # noqa: ANN202
    from ioc.district.loader import load_district
    from ioc.settings import get_settings

    settings = get_settings()
    return settings, load_district(settings.district_config)


def _secrets(value: Path | None) -> Path:
    from ioc.settings import get_settings

    return value or get_settings().var_dir / "broker-secrets"


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Where to write mosquitto.conf, ioc.passwd and ioc.acl.")],
    secrets: Annotated[Path | None, typer.Option(help=SECRETS_HELP)] = None,
    bind: Annotated[str, typer.Option(help="Address the listeners bind to.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Plain MQTT port.")] = 1883,
    plaintext: Annotated[bool, typer.Option(help="--no-plaintext: no plain MQTT listener at all (TLS only).")] = True,
    tls_port: Annotated[int, typer.Option(help="MQTT over TLS port (0: none).")] = 8883,
    client_cert_port: Annotated[
        int, typer.Option(help="TLS port needing a client certificate, CN = account (0: none).")
    ] = 0,
    tls_dir: Annotated[
        Path | None, typer.Option(help="Directory of ca.crt, server.crt/.key (default OUT/tls).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Mosquitto persistence directory (default: none).")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Mosquitto's log file (default: standard error).")] = None,
) -> None:
    """Write the broker's hashed password file, its ACL (one account per device and per service, least
    rights) and a Mosquitto configuration. Passwords come from IOC_BROKER_PASSWORD_<ACCOUNT> or the
    secrets directory; missing ones are generated there.

    Example: ioc broker certs --out /etc/mosquitto/ioc/tls --host mq.example.vn && \\
    ioc broker generate --out /etc/mosquitto/ioc --no-plaintext
    """
    from ioc.broker.config import Listeners
    from ioc.broker.config import generate as run

    settings, district = _district()
    listeners = Listeners(bind=bind, plaintext_port=port if plaintext else None, tls_port=tls_port or None,
                          client_cert_port=client_cert_port or None, tls_dir=tls_dir)  # fmt: skip
    try:
        made = run(district, out, _secrets(secrets), root=settings.mqtt_topic_root, listeners=listeners,
                   data_dir=data_dir, log_file=log_file)  # fmt: skip
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(exit_codes.FAILED) from None
    devices = sum(a.kind == "device" for a in made.accounts)
    typer.echo(f"{devices} device and {len(made.accounts) - devices} service accounts")
    for path in made.files.values():
        typer.echo(f"wrote {path}")
    if (listeners.tls_port or listeners.client_cert_port) and not ((tls_dir or out / "tls") / "server.crt").exists():
        typer.echo(f"note: no certificate in {tls_dir or out / 'tls'} yet: run `ioc broker certs --out ...`", err=True)


@app.command()
def certs(
    out: Annotated[Path, typer.Option(help="Directory for ca.crt/ca.key (kept once made), server.crt/key, clients/.")],
    host: Annotated[Names, typer.Option(help="Broker host name or address (repeat).")] = None,
    client: Annotated[Names, typer.Option(help="Account to issue a client certificate for (repeat).")] = None,
) -> None:
    """Make a private CA and the broker's server certificate (and client certificates) for small sites
    and tests. Example: ioc broker certs --out var/broker/tls --host mq.bactramy.vn --host 10.0.0.5"""
    from ioc.broker.certs import make_certs

    made = make_certs(out, list(host or ["localhost", "127.0.0.1"]), list(client or []))
    for name, path in made.items():
        typer.echo(f"{name}: {path}")


@app.command()
def rotate(
    account: Annotated[Names, typer.Argument(help="Accounts whose password to replace.")] = None,
    all_devices: Annotated[bool, typer.Option(help="Every device account.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every account, devices and services.")] = False,
    secrets: Annotated[Path | None, typer.Option(help=SECRETS_HELP)] = None,
    out: Annotated[Path | None, typer.Option(help="Also rewrite OUT/ioc.passwd (then SIGHUP Mosquitto).")] = None,
) -> None:
    """New random passwords (the files in the secrets directory are replaced). Give each device its new
    credentials (`ioc broker credentials`), then reload the broker."""
    from ioc.broker.accounts import accounts_for
    from ioc.broker.passwords import password_file, password_for
    from ioc.broker.passwords import rotate as run

    settings, district = _district()
    accounts = accounts_for(district, settings.mqtt_topic_root)
    known = {a.name for a in accounts}
    chosen = [a.name for a in accounts if all_ or (all_devices and a.kind == "device")] + list(account or [])
    unknown = sorted(set(chosen) - known)
    if unknown or not chosen:
        typer.echo(f"unknown account(s): {', '.join(unknown)}" if unknown else "name accounts, --all-devices or --all",
                   err=True)  # fmt: skip
        raise typer.Exit(exit_codes.USAGE)
    secrets_dir = _secrets(secrets)
    done = run(sorted(set(chosen)), secrets_dir)
    typer.echo(f"rotated {len(done)} password(s) in {secrets_dir}")
    if out is not None:
        (out / "ioc.passwd").write_text(password_file({a.name: password_for(a.name, secrets_dir) for a in accounts}))
        typer.echo(f"wrote {out / 'ioc.passwd'}; reload Mosquitto (SIGHUP) to apply")


@app.command()
def credentials(
    account: Annotated[str, typer.Argument(help="A device id or a service account (ioc-radio, ioc-ingest...).")],
    secrets: Annotated[Path | None, typer.Option(help=SECRETS_HELP)] = None,
) -> None:
    """Print what to provision a device or service with (JSON): user name, password, its topics and, for
    a loudspeaker cluster, the Ed25519 public key its commands are signed with."""
    from ioc.broker.config import credentials as bundle
    from ioc.broker.config import dumps
    from ioc.radio.signing import CommandKeys

    settings, district = _district()
    try:
        found = bundle(district, account, _secrets(secrets), root=settings.mqtt_topic_root,
                       keys=CommandKeys.from_settings(settings))  # fmt: skip
    except KeyError:
        typer.echo(f"no account {account!r} in the district file", err=True)
        raise typer.Exit(exit_codes.USAGE) from None
    typer.echo(dumps(found))


@app.command()
def accounts() -> None:
    """List the accounts the district file gives, with their rights."""
    from ioc.broker.accounts import accounts_for

    settings, district = _district()
    for a in accounts_for(district, settings.mqtt_topic_root):
        rights = ", ".join(f"{access} {topic}" for access, topic in a.rules) or "(none)"
        typer.echo(f"{a.name}\t{a.kind}\t{rights}")
