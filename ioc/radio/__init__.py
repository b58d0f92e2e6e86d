"""The IP public-address radio service ("đài truyền thanh IP"): recordings, programmes, urgent
broadcasts, commands with acks and retries, the proof of broadcast, CAP -> radio (docs/radio.md).

Modules, each with one job: :mod:`content` (audio checks, storage, text-to-speech),
:mod:`schedules` (weekly programmes, conflicts, each cluster's week), :mod:`commands` (correlation
ids, timeouts, bounded retries), :mod:`broadcasts` (targets, start, stop, proof, alerts),
:mod:`sync` (keeping the clusters' stored weeks current), :mod:`cap` (CAP -> radio),
:mod:`service` (the ``ioc radio serve`` process), :mod:`policy` (the policy from the settings and
the district file).
"""
