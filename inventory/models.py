"""The inventory context: models."""
