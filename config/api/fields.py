"""Serializer fields that several contexts' APIs share.

The aware date-time field is the outbox's (its API takes "as of" times too, and the outbox imports
nothing of the project), used here as it is.
"""

from outbox.serializers import AS_OF_FORMAT, AwareDateTimeField

__all__ = ["AS_OF_FORMAT", "AwareDateTimeField"]
