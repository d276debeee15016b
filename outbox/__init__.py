"""The event machinery: events, the outbox, the relay, handler runs and the dead-letter queue.

Handlers raise ``outbox.Permanent`` or ``outbox.RetryLater`` to say what a failure means;
``publish(..., expected_version=)`` raises ``outbox.ConcurrencyError`` when another writer appended first.
"""

from .failures import ConcurrencyError, Permanent, RetryLater

__all__ = ["ConcurrencyError", "Permanent", "RetryLater"]
