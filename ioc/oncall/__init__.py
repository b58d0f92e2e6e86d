"""On call (trực): who is paged for a commune and role now, and the pages sent to them.

Shifts come from ``config/on-call.yaml`` (weekly, local time) and overrides from the API (swaps,
leave); an escalation step pages the person on call for its role, a severe alert pages the commune's
officer at once. Pages are queued in the transaction that escalates or raises the alert and sent
afterwards (Web Push to the person's phones, e-mail), so no network call holds a database lock;
the person acknowledges the alert from the page or the console, and the incident's timeline says so.
"""
