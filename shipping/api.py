"""The shipping context: api."""
