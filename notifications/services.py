"""The notifications context: services."""
