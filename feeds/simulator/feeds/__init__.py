"""The feeds of the simulated day; importing this package registers them all."""

from feeds.simulator.feeds import devices, dossiers, reports  # noqa: F401
