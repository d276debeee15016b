"""The customers context: a customer's identity, and their right to be forgotten (docs/security.md)."""
