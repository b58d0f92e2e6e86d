"""Incidents: one case from many signals (alerts, citizens' reports, radio warnings).

An operator works on incidents, not on raw alerts: five water-level alerts, three citizens' flood
reports and the radio warning about the flood in one commune are one incident with one timeline and
one checklist. Correlation rules come from ``config/incident-rules.yaml`` (:mod:`ioc.incidents.rules`);
the decision is one pure function (:mod:`ioc.incidents.correlate`) used both by the database path
(:mod:`ioc.incidents.store`, inside the transaction that raises the alert) and by the evaluation on a
labelled scenario (:mod:`ioc.incidents.evaluate`), so what is measured is what runs.
"""
