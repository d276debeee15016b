"""The inventory context: api."""
