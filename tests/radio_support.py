"""What the radio tests share: real audio written at test time, and waiting on the running fleet."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import soundfile


def wav(seconds: float, rate: int = 16_000, fmt: str = "WAV") -> bytes:
    """A tone of ``seconds`` encoded as ``fmt``: real audio, no binary fixture."""
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, format=fmt)
    return buffer.getvalue()


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll ``check`` until it returns something truthy (returned), or fail saying ``what`` never came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
