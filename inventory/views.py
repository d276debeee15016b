"""The inventory context: views."""
