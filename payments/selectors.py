"""The payments context: selectors."""
