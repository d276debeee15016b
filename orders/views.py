"""The orders context: views."""
