"""The notifications context: forms."""
