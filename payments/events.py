"""The payments context: events."""
