"""The notifications context: api."""
