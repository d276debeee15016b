"""The event machinery: events, the outbox, the relay, handler runs and the dead-letter queue.

Handlers raise ``outbox.Permanent`` or ``outbox.RetryLater`` to say what a failure means.
"""

from .failures import Permanent, RetryLater

__all__ = ["Permanent", "RetryLater"]
