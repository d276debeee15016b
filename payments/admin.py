"""The payments context: admin."""
