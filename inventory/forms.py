"""The inventory context: forms."""
