"""The feeds of the simulated day; importing this package registers them all."""

from feeds.simulator.feeds import clinics, devices, dossiers, mentions, reports, schools  # noqa: F401
