"""Free local ports for servers we start ourselves (embedded broker, tests, benches).

Why not simply bind port 0: the kernel then hands out a port from its *ephemeral* range, the
same range it uses for the local end of every outgoing connection. Between our probe and the
server's own bind, a long-lived client connection (a database pool, an MQTT session) may take
that very port, and the server then fails with "address already in use" on every restart: a
clean-clone CI run lost ``ioc up`` this way. Ports below the ephemeral range are never handed
out implicitly, so a port we probe there stays ours unless another server binds it on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # clear of well-known and commonly configured service ports
_DEFAULT_EPHEMERAL = (32_768, 60_999)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def _candidate_ranges() -> list[range]:
    low, high = _ephemeral_range()
    ranges = [range(_LOWEST, low), range(high + 1, 65_536)]
    return [r for r in ranges if len(r) >= 100]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing uses now and the kernel will not give to a client socket."""
    ranges = _candidate_ranges()
    rng = random.SystemRandom()
    for _ in range(200):
        if not ranges:
            break
        chosen = rng.choice(ranges)
        port = rng.randrange(chosen.start, chosen.stop)
        if _bindable(host, port):
            return port
    # No room outside the ephemeral range (an unusual kernel setting): fall back to the kernel's pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
