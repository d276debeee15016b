"""The orders context: events."""
