"""The websocket hub: live events (alerts, presence, detections, KPIs) pushed to the operations wall."""
