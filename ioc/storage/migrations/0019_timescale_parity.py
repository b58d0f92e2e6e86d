"""TimescaleDB path as exact as the native one (issue #19).

Databases made by earlier releases on TimescaleDB had continuous aggregates for the hourly rollups
(created by ``maintain``, not by a migration) and retention policies fixed at migration. This step
replaces them with the trigger-kept rollup tables that the native path has (backfilled from the raw
rows) and leaves retention to ``maintain``; on native it makes the partitions of the whole retention
window. A no-op on a schema made by this release. The DDL lives in ``ioc.storage.timeseries``.
"""

from yoyo import step

__depends__ = {"0002_timeseries"}


def apply_step(conn):
    from ioc.storage import timeseries

    timeseries.upgrade_schema(conn)


steps = [step(apply_step)]
