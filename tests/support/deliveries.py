"""Outbox rows written directly, as the runner leaves them, for tests of what reads them."""

import uuid

from django.utils import timezone

from outbox import failures
from outbox.models import Delivery, OutboxEvent


def make_delivery(*, handler: str = "probe.breakable", status: str = "dead", **fields) -> Delivery:
    """A delivery of a fresh ``probe.Broke`` event, in ``status``; a dead one has its error and traceback."""
    now = timezone.now()
    event = OutboxEvent.objects.create(
        type="probe.Broke",
        version=1,
        occurred_at=now,
        aggregate_type="probe.Thing",
        aggregate_id=str(uuid.uuid4()),
        correlation_id=uuid.uuid4(),
        payload={"thing_id": str(uuid.uuid4())},
        relayed_at=now,
    )
    dead = status == "dead"
    defaults = {
        "queue": "probe",
        "attempts": 3,
        "due_at": now,
        "finished_at": now if status in ("done", "dead") else None,
        "last_error": "ValueError: the probe is broken" if dead else "",
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: the probe is broken" if dead else "",
    }
    return Delivery.objects.create(event=event, handler=handler, status=status, **{**defaults, **fields})


def make_dead_letter_of(exc: Exception, *, handler: str = "probe.jammable", **fields) -> Delivery:
    """A dead letter as the runner leaves one after the handler raised ``exc``: its error, traceback and cause."""
    error = f"{type(exc).__name__}: {exc}"
    cause = {"error_type": failures.error_type(exc), "error_pattern": failures.error_pattern(error)}
    trace = f"Traceback (most recent call last):\n  ...\n{error}"
    return make_delivery(handler=handler, last_error=error, traceback=trace, **{**cause, **fields})
