"""The payments context: forms."""
