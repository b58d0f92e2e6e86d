"""Recordings for the loudspeakers: checked by decoding, stored by checksum; Vietnamese text-to-speech.

A file is accepted only when libsndfile (through ``soundfile``) recognises it by its bytes as WAV,
MP3 or OGG and decodes it to the end: the name and the declared type are ignored, and a truncated or
corrupt file fails here rather than on a loudspeaker in the middle of a storm warning. Duration,
sample rate and size are bounded. The bytes are stored as ``<media>/radio/<sha256>.<ext>`` (the same
recording uploaded twice is stored once) and devices check the SHA-256 after fetching.

Text-to-speech uses the ``espeak-ng`` program (Debian package ``espeak-ng``) when it is installed;
without it :func:`synthesize` raises :class:`TtsUnavailable` with a message that says so.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import soundfile

FORMATS = {"WAV": "wav", "MP3": "mp3", "OGG": "ogg"}
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
MIN_DURATION_S = 0.2


class AudioRefused(ValueError):
    """The file is not an acceptable recording; ``str()`` says why."""


class TtsUnavailable(RuntimeError):
    """Text-to-speech cannot run here (espeak-ng is not installed)."""


@dataclass(frozen=True)
class AudioInfo:
    format: str
    subtype: str
    duration_s: float
    sample_rate: int
    channels: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class StoredAudio:
    id: int
    sha256: str
    duration_s: float
    sample_rate: int
    format: str
    created: bool


def inspect_audio(data: bytes, *, max_bytes: int, max_duration_s: float) -> AudioInfo:
    """What ``data`` is, after decoding all of it; :class:`AudioRefused` with the reason otherwise."""
    if not data:
        raise AudioRefused("empty file")
    if len(data) > max_bytes:
        raise AudioRefused(f"file too large: {len(data)} bytes, the limit is {max_bytes}")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            kind, subtype = sound.format, sound.subtype
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            if kind not in FORMATS:
                raise AudioRefused(f"unsupported audio type {kind}: send WAV, MP3 or OGG")
            if frames > 0 and frames / rate > max_duration_s:
                raise AudioRefused(f"too long: {frames / rate:.1f} s, the limit is {max_duration_s:g} s")
            decoded = 0
            for block in sound.blocks(blocksize=65_536, dtype="int16", always_2d=True):
                decoded += len(block)
                if decoded / rate > max_duration_s:
                    raise AudioRefused(f"too long: over {max_duration_s:g} s")
    except AudioRefused:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioRefused(f"not a readable WAV, MP3 or OGG recording: {exc}") from None
    if frames > 0 and decoded < frames:
        raise AudioRefused(f"corrupt or truncated: decoded {decoded} of {frames} frames")
    if kind == "WAV":
        _check_wav_length(data)
    duration = decoded / rate
    if duration < MIN_DURATION_S:
        raise AudioRefused(f"too short: {duration:.2f} s (at least {MIN_DURATION_S} s)")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioRefused(f"sample rate {rate} Hz outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return AudioInfo(
        format=kind,
        subtype=subtype,
        duration_s=round(duration, 3),
        sample_rate=rate,
        channels=channels,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _check_wav_length(data: bytes) -> None:
    """libsndfile quietly shortens a WAV whose data chunk is cut off; the header says how long it was."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return  # RF64/W64 variants: nothing simple to compare
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            held = len(data) - offset - 8
            if size != 0xFFFFFFFF and size > held:
                raise AudioRefused(f"corrupt or truncated: {size} bytes of audio declared, {held} present")
            return
        offset += 8 + size + (size & 1)


def inspect_audio_file(path: Path, *, max_bytes: int, max_duration_s: float) -> AudioInfo:
    """:func:`inspect_audio` of a file on disk; run in the media pool (:mod:`ioc.reports.media_pool`)
    so that the decoding of an upload never runs in the API process."""
    if path.stat().st_size > max_bytes:
        raise AudioRefused(f"file too large: {path.stat().st_size} bytes, the limit is {max_bytes}")
    return inspect_audio(path.read_bytes(), max_bytes=max_bytes, max_duration_s=max_duration_s)


def speech_checked(text: str, *, max_bytes: int, max_duration_s: float) -> tuple[bytes, AudioInfo]:
    """:func:`synthesize` and the check of what it made, in one media pool job."""
    data = synthesize(text)
    return data, inspect_audio(data, max_bytes=max_bytes, max_duration_s=max_duration_s)


def store_audio(
    conn: psycopg.Connection,
    media_dir: Path,
    data: bytes,
    *,
    title: str,
    created_by: str | None,
    max_bytes: int,
    max_duration_s: float,
    source: str = "upload",
    text: str | None = None,
) -> StoredAudio:
    """Check ``data`` and store it (file first, then the row: a row never points at a missing file)."""
    info = inspect_audio(data, max_bytes=max_bytes, max_duration_s=max_duration_s)
    return store_checked_audio(conn, media_dir, data, info, title=title, created_by=created_by, source=source,
                               text=text)  # fmt: skip


def store_checked_audio(
    conn: psycopg.Connection,
    media_dir: Path,
    data: bytes | Path,
    info: AudioInfo,
    *,
    title: str,
    created_by: str | None,
    source: str = "upload",
    text: str | None = None,
) -> StoredAudio:
    """Store a recording :func:`inspect_audio` accepted as ``info``: ``data`` is its bytes, or a
    file on the same file system as ``media_dir`` that is moved into place (an upload spooled to
    disk: the API process never holds it). File first, then the row."""
    key = f"radio/{info.sha256}.{FORMATS[info.format]}"
    path = media_dir / key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            data.replace(path)
        else:
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
    row = conn.execute(
        """INSERT INTO radio_audio (sha256, title, format, subtype, duration_s, sample_rate, channels, bytes,
                                    storage_key, source, text, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (sha256) DO NOTHING RETURNING id""",
        (
            info.sha256,
            title,
            info.format,
            info.subtype,
            info.duration_s,
            info.sample_rate,
            info.channels,
            info.bytes,
            key,
            source,
            text,
            created_by,
        ),  # fmt: skip
    ).fetchone()
    created = row is not None
    if row is None:
        row = conn.execute("SELECT id FROM radio_audio WHERE sha256 = %s", (info.sha256,)).fetchone()
    assert row is not None
    return StoredAudio(row[0], info.sha256, info.duration_s, info.sample_rate, info.format, created)


def tts_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, *, voice: str = "vi", speed_wpm: int = 140) -> bytes:
    """``text`` read in Vietnamese by espeak-ng, as WAV bytes."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise TtsUnavailable(
            "text-to-speech needs espeak-ng (Debian: apt-get install espeak-ng), which is not installed; "
            "upload a recording instead"
        )
    with tempfile.TemporaryDirectory(prefix="ioc-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        # The text goes through stdin, never the command line: nothing in it is interpreted.
        subprocess.run(
            [program, "-v", voice, "-s", str(speed_wpm), "-w", str(out), "--stdin"],
            input=text.encode("utf-8"),
            check=True,
            capture_output=True,
            timeout=120,
        )
        return out.read_bytes()
