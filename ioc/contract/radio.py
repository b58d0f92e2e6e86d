"""The IP radio device protocol: commands the IOC sends to a loudspeaker cluster and what the
cluster reports back (docs/radio.md).

A cluster is an ordinary device of kind ``radio`` on the topic tree, so its ``status`` (retained,
Last Will ``offline``), ``telemetry``, ``event`` and ``cmd/ack`` go through ingest like any other
device's. What is radio-specific lives here:

* the **commands** published on ``.../radio/<cluster>/cmd`` (``play``, ``stop``, ``volume``,
  ``sync_schedule``, ``reboot``), each with a ``correlation_id``; the MQTT 5 PUBLISH also carries the
  Response Topic (``.../cmd/ack``) and Correlation Data (the same id), so a device can answer without
  knowing the topic tree;
* the **playback events** (``playback.started``, ``playback.finished``, ``playback.interrupted``) and
  their ``data``;
* the radio facts in the retained status' ``info``.

The answer to a command is the contract's :class:`~ioc.contract.schemas.CommandAckV1`. The models are
strict like the rest of the contract, so a device that sends something else is told exactly why.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from ioc.contract.schemas import FiniteFloat, Identifier, MessageId, ShortText

PLAYBACK_EVENTS = ("playback.started", "playback.finished", "playback.interrupted")
COMMANDS = ("play", "stop", "volume", "sync_schedule", "reboot")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ItemId = Annotated[str, StringConstraints(pattern=r"^[a-z]+-[0-9]{1,18}$")]
"""What is playing: ``b-<broadcast id>`` or ``s-<schedule id>``."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


class AudioRef(_Strict):
    """Where the device fetches the audio and how it checks it (the bytes' SHA-256)."""

    id: int = Field(ge=1)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    url: Annotated[str, StringConstraints(max_length=500)] = Field(
        description="Path on the IOC's API (`/api/radio/audio/<id>/file`, fetched with the device's API key)."
    )
    duration_s: FiniteFloat = Field(gt=0, description="Length of one play of the recording.")


class _Command(_Strict):
    v: Literal[1] = 1
    id: MessageId = Field(description="The command message's id; equal to correlation_id.")
    ts: AwareDatetime
    correlation_id: MessageId = Field(description="Echoed by the device's ack (and in MQTT 5 Correlation Data).")
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="A device that receives the command after this refuses it (no ack); also the MQTT 5 "
        "Message Expiry. Signed commands always carry it.",
    )
    target: Identifier | None = Field(
        default=None, description="The cluster the command is for; a cluster refuses a command for another."
    )
    attempt: int = Field(
        default=1, ge=1, le=100, description="Which send of this correlation id (a re-send is the next attempt)."
    )


class PlayCommand(_Command):
    """Play a recording now, ``repeat`` times; ``urgent`` preempts whatever is playing."""

    command: Literal["play"] = "play"
    item: ItemId
    broadcast_id: int | None = None
    audio: AudioRef
    repeat: int = Field(default=1, ge=1, le=20)
    priority: Literal["urgent", "normal"] = "normal"
    volume: int | None = Field(default=None, ge=0, le=100, description="Volume for this item (default: current).")


class StopCommand(_Command):
    """Stop ``item`` if it is playing (``item`` absent: whatever is playing)."""

    command: Literal["stop"] = "stop"
    item: ItemId | None = None


class VolumeCommand(_Command):
    command: Literal["volume"] = "volume"
    volume: int = Field(ge=0, le=100)


class ScheduleItem(_Strict):
    """One programme of the device's week: local time (``timezone``), ``end`` is start + duration × repeat
    and may fall on the next day."""

    item: ItemId
    schedule_id: int
    title: ShortText
    days: list[Weekday] = Field(min_length=1)
    start: time
    audio: AudioRef
    repeat: int = Field(default=1, ge=1, le=20)


class SyncScheduleCommand(_Command):
    """Replace the device's stored week: it plays it from its own clock even with no link to the IOC."""

    command: Literal["sync_schedule"] = "sync_schedule"
    version: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")]
    timezone: Literal["Asia/Ho_Chi_Minh"] = "Asia/Ho_Chi_Minh"
    items: list[ScheduleItem] = Field(max_length=200)


class RebootCommand(_Command):
    command: Literal["reboot"] = "reboot"


RadioCommand = Annotated[
    PlayCommand | StopCommand | VolumeCommand | SyncScheduleCommand | RebootCommand,
    Field(discriminator="command"),
]
COMMAND_ADAPTER: TypeAdapter[RadioCommand] = TypeAdapter(RadioCommand)


class PlaybackData(_Strict):
    """``data`` of a playback event (``type`` is one of :data:`PLAYBACK_EVENTS`)."""

    item: ItemId
    broadcast_id: int | None = None
    schedule_id: int | None = None
    position_s: FiniteFloat = Field(default=0.0, ge=0, description="Seconds played of the whole item (all repeats).")
    duration_s: FiniteFloat | None = Field(default=None, ge=0, description="Length of the whole item (all repeats).")
    repeats_done: int = Field(default=0, ge=0)
    scheduled_for: AwareDatetime | None = Field(default=None, description="Schedule items: the planned start.")
    reason: ShortText | None = Field(
        default=None, description="interrupted: `stopped`, `preempted`, `power_lost`, `fault`..."
    )
    buffered: bool = Field(default=False, description="Sent after the link came back (played while offline).")


class RadioStatusInfo(BaseModel):
    """What a cluster reports in its retained status ``info`` (unknown vendor keys are kept, not checked)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    firmware: str | None = Field(default=None, max_length=64)
    playing: bool = False
    item: str | None = Field(default=None, max_length=64)
    volume: int | None = Field(default=None, ge=0, le=100)
    power: Literal["mains", "battery", "solar"] | None = None
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    schedule_version: str | None = Field(default=None, max_length=64)
