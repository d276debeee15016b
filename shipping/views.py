"""The shipping context: views."""
