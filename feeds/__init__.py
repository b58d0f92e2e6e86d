"""Adapters that bring outside sources onto MQTT: camera streams, radio devices, sector data, and the
simulator that stands in for all of them in `ioc up` and the tests.
"""
