"""The orders context: services."""
