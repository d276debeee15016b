"""The orders context: selectors."""
