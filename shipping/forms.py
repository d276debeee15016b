"""The shipping context: forms."""
