"""The notifications context: admin."""
