"""Broker confinement (issue #14): one login per device and per service, an ACL that gives each the
least rights it needs, TLS, all generated from the district file (``ioc broker ...``, docs/broker.md
"Confined devices")."""
