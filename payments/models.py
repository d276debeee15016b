"""The payments context: models."""
