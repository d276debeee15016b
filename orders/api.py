"""The orders context: api."""
