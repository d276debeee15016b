"""The orders context: models."""
