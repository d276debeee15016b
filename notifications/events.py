"""The notifications context: events."""
