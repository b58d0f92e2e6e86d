"""Sector KPIs: public-service dossiers first (docs/kpi.md)."""
