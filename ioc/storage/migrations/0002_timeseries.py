"""Time-series tables: TimescaleDB hypertables when the extension is available, native monthly
range partitions otherwise. The DDL for both lives in ``ioc.storage.timeseries`` so that the
migration and the maintenance job (partitions ahead, retention) share one description of the tables.
"""

from yoyo import step

__depends__ = {"0001_core"}


def apply_step(conn):
    from ioc.storage import timeseries

    timeseries.create_schema(conn)


steps = [step(apply_step)]
