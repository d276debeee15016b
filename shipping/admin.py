"""The shipping context: admin."""
