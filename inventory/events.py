"""The inventory context: events."""
