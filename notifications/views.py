"""The notifications context: views."""
