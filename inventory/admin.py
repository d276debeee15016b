"""The inventory context: admin."""
