"""Simulated IP loudspeaker clusters (``đài truyền thanh IP``): :class:`~feeds.radio.device.SimCluster`
behaves like one receiver box, :class:`~feeds.radio.fleet.RadioFleet` runs the district's clusters."""
