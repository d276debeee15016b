"""Outbox rows written directly, as a bulk load or older code would, bypassing ``publish``."""

import uuid

from django.utils import timezone

from outbox.events import DomainEvent
from outbox.models import OutboxEvent


def outbox_row(event: DomainEvent) -> OutboxEvent:
    """An unsaved outbox row for ``event``, for ``bulk_create``."""
    return OutboxEvent(
        type=event.event_type,
        version=event.version,
        occurred_at=timezone.now(),
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=uuid.uuid4(),
        payload=event.model_dump(mode="json"),
    )
