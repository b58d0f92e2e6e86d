"""The single settings object of every ioc process.

Values come from the environment (prefix ``IOC_``) and an optional ``.env`` file, never from the
repository: secrets such as passwords and signing keys must be supplied by the environment of the
deployment. Every field is documented in README.md ("Configuration"); ``ioc settings`` prints the
table that README reproduces, so the two cannot drift apart unnoticed (a test compares them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Process configuration. Unset database/broker URLs mean "start the embedded ones"."""

    model_config = SettingsConfigDict(env_prefix="IOC_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL/TimescaleDB URL, e.g. postgresql://ioc@db:5432/ioc. Unset: `ioc up` starts "
        "an embedded PostgreSQL with its data under IOC_VAR_DIR/pg.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT 5 broker URL, mqtt://[user:password@]host:port. Unset: `ioc up` starts an embedded "
        "broker (rumqttd through iotcore) on a free local port.",
    )
    mqtt_username: str | None = Field(default=None, description="Broker user name (overrides the URL's).")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password (overrides the URL's).")
    mqtt_ca_file: Path | None = Field(
        default=None, description="CA certificate of an mqtts:// broker (`ioc broker certs`); unset: the system CAs."
    )
    mqtt_topic_root: str = Field(default="ioc/v1", description="Root of the topic tree (see docs/mqtt.md).")
    mqtt_share_group: str = Field(
        default="ioc-ingest",
        description="Shared-subscription group of the ingest workers: N workers split the load. Empty: an "
        "exclusive subscription (one worker; `ioc up` does this on the embedded broker).",
    )
    district_config: Path = Field(
        default=PROJECT_ROOT / "config" / "district.yaml",
        description="The district configuration file (units, devices, categories, thresholds, seed users).",
    )
    var_dir: Path = Field(
        default=PROJECT_ROOT / "var",
        description="Where embedded services and media keep their data (reused by the next `make up`).",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API and pages listen on.")
    http_port: int = Field(default=8000, description="Port of the HTTP API and pages.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    timeseries_backend: Literal["auto", "timescale", "native"] = Field(
        default="auto",
        description="auto: TimescaleDB when the extension is installed and preloaded, native partitioning otherwise.",
    )
    partition_premake: int = Field(
        default=2, ge=1, description="Native backend: monthly partitions created ahead of the current month."
    )
    telemetry_retention_days: int = Field(default=90, ge=1, description="Retention of raw telemetry.")
    events_retention_days: int = Field(default=730, ge=1, description="Retention of device and camera events.")
    dossier_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Retention of dossier events (the history behind the one-stop figures); unset: kept for ever. "
        "An import of older rows is refused naming this setting.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signing key for access tokens. Required in production; `ioc up` generates a throw-away "
        "one under IOC_VAR_DIR when unset.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from another site (JSON list, e.g. "
        '["https://ioc.example.vn"]); empty: same origin only (the pages are served by the API).',
    )
    map_tile_url: str | None = Field(
        default=None,
        description="Optional background map tiles for the pages, e.g. https://tiles.example.vn/{z}/{x}/{y}.png "
        "(its host is then allowed by the Content-Security-Policy); unset: unit polygons only, no internet needed.",
    )
    public_submit_burst: int = Field(
        default=5, ge=1, description="Citizen report submissions one client address may send at once."
    )
    public_submit_per_min: float = Field(
        default=1.0, gt=0, description="Then this many submissions a minute per client address (429 beyond)."
    )
    media_workers: int = Field(
        default=0, ge=0, le=64, description="Processes for photo and video work (0: one fewer than the CPUs, 1 to 4)."
    )
    media_queue: int = Field(
        default=64, ge=1, description="Media jobs that may wait for a worker; beyond that uploads get 503 (retry)."
    )
    alert_rules: Path | None = Field(
        default=PROJECT_ROOT / "config" / "alert-rules.yaml",
        description="Alert rules and escalation ladders (docs/alerts.md); empty: the ingest workers raise no alerts.",
    )
    sector_thresholds: Path | None = Field(
        default=PROJECT_ROOT / "config" / "sector-thresholds.yaml",
        description="Education, health and online-information thresholds (docs/kpi.md); empty: the ingest workers "
        "store sector figures but raise no sector alerts.",
    )
    on_call: Path | None = Field(
        default=PROJECT_ROOT / "config" / "on-call.yaml",
        description="Who is on call per commune and role, by weekly shift (docs/incidents.md); empty: nobody "
        "is paged (overrides over the API still page).",
    )
    incident_rules: Path | None = Field(
        default=PROJECT_ROOT / "config" / "incident-rules.yaml",
        description="Incident correlation rules and checklists (docs/incidents.md); empty: one incident per cause.",
    )
    cap_sender: str = Field(
        default="ioc@localhost",
        pattern=r"^[^\s,<&]+$",
        description="CAP 1.2 `sender` of exported alerts (no spaces or commas), e.g. ioc@bactramy.quangnam.gov.vn.",
    )
    cap_sender_name: str = Field(
        default="Trung tâm điều hành thông minh", description="CAP 1.2 `senderName` of exported alerts."
    )
    simulator_seed: int = Field(default=20251, description="Seed of the feed simulator (same seed, same day).")
    simulator_speed: float = Field(
        default=1.0, gt=0, description="Simulated seconds per wall-clock second in `ioc simulate` (1: the live day)."
    )
    radio_ack_timeout_s: float = Field(
        default=10.0, gt=0, description="Radio: seconds a cluster has to acknowledge a command before it is sent again."
    )
    radio_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Radio: sends of one command at most; then it has timed out."
    )
    radio_share_group: str = Field(
        default="ioc-radio",
        description="Shared-subscription group of `ioc radio serve` for acks and playback events; empty: exclusive.",
    )
    radio_max_audio_s: float = Field(default=1800.0, gt=0, description="Radio: longest recording accepted (seconds).")
    radio_max_audio_bytes: int = Field(default=50_000_000, gt=0, description="Radio: largest recording (bytes).")
    radio_playback_grace_s: float = Field(
        default=60.0, gt=0, description="Radio: silence after which an accepted or playing cluster is judged as is."
    )
    radio_command_key: SecretStr | None = Field(
        default=None,
        description="Radio: district secret (64 hex) from which each cluster's command-signing key is derived. "
        "Unset: IOC_RADIO_COMMAND_KEY_FILE, else IOC_VAR_DIR/radio-command.key (made on first use).",
    )
    radio_command_key_file: Path | None = Field(
        default=None, description="Radio: file holding the command-signing secret (see IOC_RADIO_COMMAND_KEY)."
    )
    warnings_config: Path | None = Field(
        default=PROJECT_ROOT / "config" / "warnings.yaml",
        description="Public warning categories, channels and recipients (docs/warnings.md); empty: no category may "
        "reach loudspeakers or public channels.",
    )
    smtp_url: str | None = Field(
        default=None, description="Warnings by e-mail: smtp://[user:password@]host:port (smtps:// for TLS); unset: "
        "e-mail deliveries fail with that reason.",
    )
    smtp_from: str = Field(default="ioc@localhost", description="Warnings by e-mail: the From address.")
    vapid_subject: str = Field(
        default="mailto:ioc@localhost", description="Web Push: the VAPID `sub` claim (a mailto: or https: contact)."
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Reverse proxies (addresses or networks, JSON list) whose X-Forwarded-For and X-Forwarded-Proto "
        'the API believes, e.g. ["10.0.0.5"]; from anyone else these headers are ignored (rate limits, audit).',
    )
    rate_limit_store: Literal["memory", "postgres"] = Field(
        default="memory",
        description="Where rate-limit buckets live: memory (one process, `ioc up`) or postgres (shared by every "
        "API replica behind a proxy; what deploy/ sets).",
    )

    @field_validator("alert_rules", "sector_thresholds", "incident_rules", "warnings_config", "on_call", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("map_tile_url", mode="before")
    @classmethod
    def _check_map_tile_url(cls, value: object) -> object:
        if value in ("", None):
            return None
        parts = urlsplit(str(value))
        if parts.scheme not in ("http", "https") or not parts.hostname or "{z}" not in str(value):
            raise ValueError("expected an http(s) URL template with {z}, {x} and {y}")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError("expected mqtt://[user:password@]host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("expected postgresql://user@host:port/database")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
