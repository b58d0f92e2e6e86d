"""Login throttling that strangers cannot use to lock an account, shared by every API replica.

Why not a lock: "5 failures lock the account" lets anyone who knows a user name keep that user out
(one address could keep every account locked), and 423-vs-401 told which accounts exist. Instead:

* **Per client address** (``addr:<address>``): after :attr:`ThrottlePolicy.free_per_address`
  failures, each further failure blocks that address for a delay that doubles (1 s, 2 s, 4 s, ...
  capped at :attr:`ThrottlePolicy.max_delay`). A password guesser slows down to a crawl.
* **Per account and address** (``pair:<address>|<username>``): after
  :attr:`ThrottlePolicy.free_per_pair` failures for one account from one address, that address is
  slowed down for that account the same way. The account's owner, logging in from anywhere else, is
  never slowed down by someone else's failures.

A throttled attempt is refused with the same answer as a wrong password, after spending the same
hashing time (the caller verifies against a dummy hash), so neither the answer nor its timing tells
a guesser whether the user exists, the password was wrong, or they are being slowed down.

State lives in PostgreSQL (``login_throttle``, migration 0015) so all API replicas share it, and
every refused login is kept in ``login_failures`` (the audit). :func:`brute_force_suspects` reads
that audit: an address failing on many accounts, or an account failing from many addresses, raises
a ``security.brute_force`` alert for the district (one per suspect and hour, deduplicated).

Delays and counts are forgotten :attr:`ThrottlePolicy.forget_after` after the last failure; a
successful login clears its pair (not the address: a guesser who knows one password does not get
a clean slate for the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg


@dataclass(frozen=True)
class ThrottlePolicy:
    #: Failures from one address (any accounts) before delays start: an office behind one NAT
    #: mistyping passwords at shift change is not slowed down.
    free_per_address: int = 20
    #: Failures for one account from one address before delays start.
    free_per_pair: int = 5
    #: First delay; each further failure doubles it.
    base_delay: timedelta = timedelta(seconds=1)
    #: Longest delay (never a lock: the address may try again after it).
    max_delay: timedelta = timedelta(minutes=15)
    #: Counts are forgotten this long after the last failure.
    forget_after: timedelta = timedelta(hours=1)
    #: Brute-force alert: one address failing on at least this many distinct accounts in the window...
    alert_accounts_per_address: int = 10
    #: ... or one account failing from at least this many distinct addresses...
    alert_addresses_per_account: int = 10
    #: ... or this many failures from one address.
    alert_failures_per_address: int = 100
    alert_window: timedelta = timedelta(minutes=15)

    def delay(self, failures: int, free: int) -> timedelta | None:
        """The block after the ``failures``-th failure, or None while still within ``free``."""
        over = failures - free
        if over <= 0:
            return None
        seconds = self.base_delay.total_seconds() * (2 ** min(over - 1, 30))
        return min(timedelta(seconds=seconds), self.max_delay)


def _keys(address: str, username: str) -> tuple[str, str]:
    return f"addr:{address}", f"pair:{address}|{username}"


def blocked(conn: psycopg.Connection, address: str, username: str, now: datetime) -> bool:
    """Whether an attempt for ``username`` from ``address`` must be refused unchecked right now."""
    row = conn.execute(
        "SELECT 1 FROM login_throttle WHERE key = ANY(%s) AND blocked_until > %s LIMIT 1",
        (list(_keys(address, username)), now),
    ).fetchone()
    return row is not None


def record_failure(
    conn: psycopg.Connection, address: str, username: str, now: datetime, outcome: str, policy: ThrottlePolicy
) -> None:
    """Count a refused login (audit row, both throttle keys, their next delay) in ``conn``'s transaction.

    A throttled attempt is audited but does not lengthen the delay: otherwise a blocked address
    that keeps knocking would push its own block out forever, which is a lock by another name.
    """
    conn.execute(
        "INSERT INTO login_failures (at, username, address, outcome) VALUES (%s, %s, %s, %s)",
        (now, username, address, outcome),
    )
    if outcome == "throttled":
        return
    for key, free in zip(_keys(address, username), (policy.free_per_address, policy.free_per_pair), strict=True):
        row = conn.execute(
            """INSERT INTO login_throttle AS t (key, failures, last_failure) VALUES (%(key)s, 1, %(now)s)
               ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN t.last_failure < %(forget)s THEN 1 ELSE t.failures + 1 END,
                   last_failure = %(now)s
               RETURNING failures""",
            {"key": key, "now": now, "forget": now - policy.forget_after},
        ).fetchone()
        assert row is not None
        delay = policy.delay(row[0], free)
        if delay is not None:
            conn.execute("UPDATE login_throttle SET blocked_until = %s WHERE key = %s", (now + delay, key))


def record_success(conn: psycopg.Connection, address: str, username: str) -> None:
    """A correct password from ``address`` clears that account's pair (the address's count stays)."""
    conn.execute("DELETE FROM login_throttle WHERE key = %s", (_keys(address, username)[1],))


def forget_old(conn: psycopg.Connection, now: datetime, policy: ThrottlePolicy, *, keep_audit: timedelta) -> int:
    """Drop throttle rows past ``forget_after`` and audit rows older than ``keep_audit``."""
    gone = conn.execute(
        "DELETE FROM login_throttle WHERE last_failure < %s AND (blocked_until IS NULL OR blocked_until < %s)",
        (now - policy.forget_after, now),
    ).rowcount
    conn.execute("DELETE FROM login_failures WHERE at < %s", (now - keep_audit,))
    return gone


@dataclass(frozen=True)
class Suspect:
    """A brute-force pattern seen in the audit window: who (``address`` or ``username``) and how much."""

    kind: str  # "address" or "account"
    who: str
    failures: int
    spread: int  # distinct accounts (for an address) or addresses (for an account)

    @property
    def dedup_key(self) -> str:
        return f"brute-force:{self.kind}:{self.who}"


def brute_force_suspects(
    conn: psycopg.Connection, now: datetime, policy: ThrottlePolicy, *, address: str, username: str
) -> list[Suspect]:
    """Whether the failures of ``address`` or of ``username`` in the alert window look like guessing."""
    since = now - policy.alert_window
    suspects = []
    row = conn.execute(
        "SELECT count(*), count(DISTINCT username) FROM login_failures WHERE address = %s AND at > %s",
        (address, since),
    ).fetchone()
    assert row is not None
    if row[1] >= policy.alert_accounts_per_address or row[0] >= policy.alert_failures_per_address:
        suspects.append(Suspect("address", address, row[0], row[1]))
    row = conn.execute(
        "SELECT count(*), count(DISTINCT address) FROM login_failures WHERE username = %s AND at > %s",
        (username, since),
    ).fetchone()
    assert row is not None
    if row[1] >= policy.alert_addresses_per_account:
        suspects.append(Suspect("account", username, row[0], row[1]))
    return suspects
