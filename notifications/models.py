"""The notifications context: models."""
