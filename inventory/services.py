"""The inventory context: services."""
