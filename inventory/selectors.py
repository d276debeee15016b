"""The inventory context: selectors."""
