"""The shipping context: services."""
