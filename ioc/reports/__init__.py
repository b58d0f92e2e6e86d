"""Citizen reports ("phản ánh, kiến nghị"): submission with photos, routing to a commune, tracking."""
