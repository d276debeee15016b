"""The notifications context: selectors."""
