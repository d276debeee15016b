"""The orders context: admin."""
