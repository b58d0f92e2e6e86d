"""Alert sequence numbers in commit order.

Clients replay with ``since=<seq>``. A sequence value taken by one transaction can commit after a
higher value taken by another; a client that had seen the higher one would then skip the lower one
forever. So every transaction that changes alerts first takes one transaction-scoped advisory
lock and only then draws ``alert_seq``: changes become visible in ``seq`` order. Alert changes are
rare (a few per second at most), so serialising them costs nothing measurable.
"""

from __future__ import annotations

import psycopg

ALERT_ORDER_LOCK = 0x10C_A1E7


def lock_alert_order(conn: psycopg.Connection) -> None:
    """Call inside the transaction, before the first change to ``alerts``."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_ORDER_LOCK,))
