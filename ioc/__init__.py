"""ioc: the backend of a district Intelligent Operations Center (Trung tâm điều hành thông minh).

The package holds the service core: settings, domain models, storage, the CLI and the HTTP app.
Sibling top-level packages hold the pipelines that depend on it: ``ingest`` (MQTT in),
``detectors`` (video frames in, detections out), ``feeds`` (outside sources onto MQTT) and
``dashboards`` (the pages).
"""

__version__ = "0.1.0"
