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


def jams(count: int) -> list[Delivery]:
    """Dead letters of probe.jammable with one cause (numbers and ids differ), oldest first."""
    return [make_dead_letter_of(RuntimeError(f"gear {n} of {uuid.uuid4()} is jammed")) for n in range(count)]


def group_of(letter: Delivery) -> str:
    """The id of the dead-letter group the letter is in."""
    from outbox.selectors import dead_letter_group_id

    return dead_letter_group_id(letter.handler, letter.error_type, letter.error_pattern)


def statuses(deliveries: list[Delivery]) -> list[str]:
    """Each delivery's status as the database has it now, in the order given."""
    return [row[0] for row in _now(deliveries, "status")]


def statuses_and_discarded(deliveries: list[Delivery]) -> list[tuple[str, bool]]:
    return [(status, resolved is not None) for status, resolved in _now(deliveries, "status", "resolved_at")]


def statuses_and_attempts(deliveries: list[Delivery]) -> list[tuple[str, int]]:
    return _now(deliveries, "status", "attempts")


def _now(deliveries: list[Delivery], *fields: str) -> list[tuple]:
    rows = {
        row[0]: row[1:] for row in Delivery.objects.filter(id__in=[d.id for d in deliveries]).values_list("id", *fields)
    }
    return [rows[d.id] for d in deliveries]
