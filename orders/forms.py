"""The orders context: forms."""
