"""Small pieces of the radio without a broker: proof rules, the command contract, WAV length checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from ioc.contract.radio import COMMAND_ADAPTER, PlaybackData
from ioc.radio.broadcasts import outcome_of
from ioc.radio.content import AudioRefused, inspect_audio


@pytest.mark.parametrize(
    ("state", "position", "reason", "offline", "online", "expected"),
    [
        ("finished", 60.0, None, False, True, ("full", None)),
        ("finished", 59.5, None, False, True, ("full", None)),  # device rounding: within 2 %
        ("finished", 30.0, None, False, True, ("partial", "finished early at 30.0 of 60.0 s")),
        ("interrupted", 31.4, "power_lost", False, False, ("partial", "interrupted (power_lost) at 31.4 s")),
        ("interrupted", 0.0, "preempted", False, True, ("none", "interrupted (preempted) at 0.0 s")),
        ("timeout", None, "no answer after 3 sends, 10 s each", True, False, ("none", "offline")),
        ("timeout", None, "no answer after 3 sends, 10 s each", False, True,
         ("none", "no answer after 3 sends, 10 s each")),
        ("rejected", None, "rejected: amplifier fault", False, True, ("none", "rejected: amplifier fault")),
        ("stopped", None, "stopped before it played", False, True, ("none", "stopped before it played")),
        ("sent", None, None, True, False, ("none", "offline, waiting for the cluster")),
    ],
)  # fmt: skip
def test_proof_outcome_rules(state: str, position: float | None, reason: str | None, offline: bool, online: bool,
                             expected: tuple[str, str | None]) -> None:  # fmt: skip
    assert outcome_of(state, position, 60.0, reason, offline, online) == expected


def test_commands_are_strict_and_carry_their_correlation_id() -> None:
    play = {"v": 1, "id": "c-1", "ts": "2026-03-01T08:30:00+07:00", "correlation_id": "c-1", "command": "play",
            "item": "b-7", "broadcast_id": 7, "repeat": 2, "priority": "urgent",
            "audio": {"id": 3, "sha256": "a" * 64, "url": "/api/radio/audio/3/file", "duration_s": 12.5}}  # fmt: skip
    command = COMMAND_ADAPTER.validate_json(json.dumps(play))
    assert (command.command, command.correlation_id, command.repeat) == ("play", "c-1", 2)
    with pytest.raises(ValidationError, match="volume"):
        COMMAND_ADAPTER.validate_json(json.dumps({**play, "command": "volume", "volume": 140}))
    with pytest.raises(ValidationError, match="Extra inputs"):
        COMMAND_ADAPTER.validate_json(json.dumps({**play, "colour": "red"}))
    with pytest.raises(ValidationError):
        COMMAND_ADAPTER.validate_json(json.dumps({**play, "command": "selfdestruct"}))
    with pytest.raises(ValidationError, match="position_s"):
        PlaybackData.model_validate_json(json.dumps({"item": "b-7", "position_s": -1.0}))


def test_a_wav_cut_short_is_refused_though_libsndfile_would_play_what_is_left() -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(32_000, dtype="float32"), 16_000, format="WAV")
    data = buffer.getvalue()
    assert inspect_audio(data, max_bytes=10**6, max_duration_s=60).duration_s == 2.0
    with pytest.raises(AudioRefused, match="corrupt or truncated: 64000 bytes of audio declared, 32000 present"):
        inspect_audio(data[: 44 + 32_000], max_bytes=10**6, max_duration_s=60)
    with pytest.raises(AudioRefused, match="file too large"):
        inspect_audio(data, max_bytes=1000, max_duration_s=60)
    with pytest.raises(AudioRefused, match="sample rate 4000 Hz"):
        low = io.BytesIO()
        soundfile.write(low, np.zeros(4000, dtype="float32"), 4000, format="WAV")
        inspect_audio(low.getvalue(), max_bytes=10**6, max_duration_s=60)
