"""The shipping context: selectors."""
