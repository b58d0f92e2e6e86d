"""Alerts: one alert per cause, a recorded lifecycle, escalation; see docs/architecture.md."""
