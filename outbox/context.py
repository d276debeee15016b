"""Where a published event comes from: the workflow it belongs to and what caused it.

The handler runner sets the context to the event being handled, and the
request middleware to the request, so that ``publish`` fills
``correlation_id`` and ``causation_id`` without every service passing them.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    traceparent: str = ""


_current: ContextVar[Cause | None] = ContextVar("outbox_cause", default=None)


def current_cause() -> Cause | None:
    return _current.get()


@contextmanager
def caused_by(cause: Cause) -> Iterator[Cause]:
    """Attribute every event published inside the block to ``cause``."""
    token = _current.set(cause)
    try:
        yield cause
    finally:
        _current.reset(token)
