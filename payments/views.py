"""The payments context: views."""
