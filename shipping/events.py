"""The shipping context: events."""
