"""The payments context: services."""
