"""The shipping context: models."""
