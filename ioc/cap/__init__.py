"""CAP 1.2 (OASIS Common Alerting Protocol): export IOC alerts, import alerts of outside authorities."""
