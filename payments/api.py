"""The payments context: api."""
