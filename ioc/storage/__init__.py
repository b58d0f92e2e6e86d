"""Storage: connections, versioned migrations, time-series tables and one repository module per aggregate.

Everything above this package reads and writes through the repositories, which hide whether the
time-series tables are TimescaleDB hypertables or natively partitioned tables.
"""
