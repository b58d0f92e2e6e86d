"""The feeds of the simulated day; importing this package registers them all."""
