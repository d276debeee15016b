"""The handler runner: what a worker does with a batch of delivery ids.

One database transaction per batch, one savepoint per delivery. For each
delivery the handler's effects, its inbox row, its "done" mark and any events
it published commit together, or (on an exception) none of them do and the
delivery is scheduled again with exponential backoff and jitter. The rows
are locked ``FOR UPDATE SKIP LOCKED``: a delivery another worker is running
right now is left to it, so a duplicate message never runs a handler twice.
"""

import logging
import random
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from . import metrics, postgresql
from .context import Cause, caused_by
from .events import Envelope, EventDecodeError, registry
from .models import UNKNOWN_TYPE_HANDLER, Delivery, InboxEntry, OutboxEvent
from .relay import kick_relay_on_commit, ordering_key
from .subscriptions import Subscription, subscriptions

logger = logging.getLogger(__name__)
Status = Delivery.Status


@dataclass
class RunReport:
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already done, or being run elsewhere
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


class _HandlerFailed(Exception):
    """A handler of a one-delivery batch raised: its whole transaction must roll back."""

    def __init__(self, delivery: Delivery, subscription: Subscription, error: str, trace: str) -> None:
        super().__init__(error)
        self.delivery, self.subscription, self.error, self.trace = delivery, subscription, error, trace


def run_deliveries(delivery_ids: list[int]) -> RunReport:
    """Run a batch of deliveries; each is atomic and isolated from the others.

    A batch of several gives each delivery a savepoint. A batch of one (the
    common case at light load) runs its handler in the batch's transaction
    directly, saving two round trips, and on failure rolls it all back and
    records the failed attempt in a transaction of its own.
    """
    try:
        return _run_batch(delivery_ids, isolate=len(delivery_ids) > 1)
    except _HandlerFailed as failure:
        return _record_failure(failure)


def _run_batch(delivery_ids: list[int], *, isolate: bool) -> RunReport:
    report = RunReport()
    with transaction.atomic():
        claimed = _claim(delivery_ids)
        report.skipped = sorted(set(delivery_ids) - {d.id for d in claimed})
        handled = []
        for delivery in claimed:
            outcome = _run_one(delivery, isolate=isolate)
            if outcome is None:
                handled.append(delivery)
                report.done.append(delivery.id)
            else:
                (report.dead if outcome.status == Status.DEAD else report.failed).append(delivery.id)
        _finish(handled)
        if any(d.ordering_key for d in claimed):
            kick_relay_on_commit()  # an ordered key may now release its next event
    return report


def _record_failure(failure: _HandlerFailed) -> RunReport:
    report = RunReport()
    with transaction.atomic():
        claimed = _claim([failure.delivery.id])
        if not claimed:  # another runner took it over meanwhile
            report.skipped = [failure.delivery.id]
            return report
        outcome = _fail(claimed[0], failure.error, failure.trace, subscription=failure.subscription)
        (report.dead if outcome.status == Status.DEAD else report.failed).append(outcome.id)
        if outcome.ordering_key:
            kick_relay_on_commit()
    return report


def _claim(delivery_ids: list[int]) -> list[Delivery]:
    """Lock the dispatched deliveries of the batch that no other worker holds."""
    if connection.vendor == "postgresql":
        return postgresql.claim(delivery_ids)
    already_handled = InboxEntry.objects.filter(handler=OuterRef("handler"), event_id=OuterRef("event__event_id"))
    return list(
        Delivery.objects.filter(id__in=delivery_ids, status=Status.DISPATCHED)
        .select_related("event")
        .annotate(already_handled=Exists(already_handled))
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
    )


def _run_one(delivery: Delivery, *, isolate: bool) -> Delivery | None:
    """Run one delivery (in a savepoint if ``isolate``). None when it succeeded, else the updated row."""
    if delivery.already_handled:
        delivery.skip_inbox = True
        return None
    delivery.skip_inbox = False
    if delivery.handler == UNKNOWN_TYPE_HANDLER:
        return _refan(delivery)
    subscription = subscriptions.get(delivery.handler)
    if subscription is None:
        return _fail(
            delivery, f"No handler named {delivery.handler!r} is subscribed in this deployment.", "", bury=True
        )
    try:
        event = registry.decode(delivery.event.type, delivery.event.version, delivery.event.payload)
    except EventDecodeError as exc:
        return _fail(delivery, str(exc), traceback.format_exc(), bury=True)
    started = time.perf_counter()
    try:
        with transaction.atomic() if isolate else nullcontext(), caused_by(_cause_of(delivery.event)):
            envelope = envelope_of(
                delivery.event, attempt=delivery.attempts, max_attempts=subscription.setting("MAX_ATTEMPTS")
            )
            subscription.handler(event, envelope)
    except Exception as exc:
        logger.warning(
            "outbox: %s failed on event %s (attempt %s)",
            delivery.handler,
            delivery.event_id,
            delivery.attempts,
            exc_info=True,
        )
        error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        if not isolate:
            raise _HandlerFailed(delivery, subscription, error, trace) from exc
        return _fail(delivery, error, trace, subscription=subscription)
    finally:
        metrics.HANDLER_SECONDS.labels(delivery.handler).observe(time.perf_counter() - started)
    return None


def _finish(handled: list[Delivery]) -> None:
    """Write the inbox rows and mark the deliveries done (one statement on PostgreSQL)."""
    if not handled:
        return
    now = timezone.now()
    inbox = [d for d in handled if not d.skip_inbox]
    transaction.on_commit(lambda: metrics.record_deliveries_done([d.handler for d in handled]))
    if connection.vendor == "postgresql":
        postgresql.finish(
            delivery_ids=[d.id for d in handled], now=now, inbox=[(d.handler, d.event.event_id) for d in inbox]
        )
        return
    InboxEntry.objects.bulk_create([InboxEntry(handler=d.handler, event_id=d.event.event_id) for d in inbox])
    Delivery.objects.filter(id__in=[d.id for d in handled]).update(status=Status.DONE, finished_at=now)


def _fail(
    delivery: Delivery,
    error: str,
    trace: str,
    *,
    subscription: Subscription | None = None,
    bury: bool = False,
) -> Delivery:
    """Record a failed attempt: retry later with backoff, or dead when out of attempts."""
    now = timezone.now()
    delivery.last_error, delivery.traceback = error[:10_000], trace
    if bury or delivery.attempts >= subscription.setting("MAX_ATTEMPTS"):
        delivery.status, delivery.finished_at = Status.DEAD, now
        logger.error("outbox: delivery %s to %s is dead: %s", delivery.id, delivery.handler, error)
    else:
        delivery.status = Status.PENDING
        delivery.due_at = now + timedelta(seconds=backoff_seconds(subscription, delivery.attempts))
    delivery.save(update_fields=["status", "finished_at", "due_at", "last_error", "traceback"])
    return delivery


def backoff_seconds(subscription: Subscription, attempts: int) -> float:
    """Exponential backoff with jitter: ``base * 2**(n-1)``, capped, less up to 20%.

    The jitter spreads retries of many deliveries that failed together, yet
    keeps each delay longer than the one before it (until the cap).
    """
    base = subscription.setting("BACKOFF_BASE_SECONDS")
    ceiling = min(subscription.setting("BACKOFF_CAP_SECONDS"), base * 2 ** (attempts - 1))
    return ceiling * random.uniform(0.8, 1.0)


def _refan(delivery: Delivery) -> Delivery | None:
    """Retry of an event whose type was unknown: fan it out if the type is known now."""
    event = delivery.event
    if not registry.is_registered(event.type):
        return _fail(delivery, f"Event type {event.type!r} is still unknown to this deployment.", "", bury=True)
    now = timezone.now()
    Delivery.objects.bulk_create(
        [
            Delivery(
                event=event,
                handler=s.name,
                queue=s.queue,
                due_at=now,
                ordering_key=ordering_key(event) if s.ordered else None,
            )
            for s in subscriptions.for_type(event.type)
        ],
        ignore_conflicts=True,
    )
    delivery.skip_inbox = True
    kick_relay_on_commit()
    return None


def _cause_of(event: OutboxEvent) -> Cause:
    return Cause(correlation_id=event.correlation_id, causation_id=event.event_id, traceparent=event.traceparent)


def envelope_of(event: OutboxEvent, *, attempt: int = 1, max_attempts: int = 1) -> Envelope:
    return Envelope(
        event_id=event.event_id,
        type=event.type,
        version=event.version,
        occurred_at=event.occurred_at,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        traceparent=event.traceparent,
        position=event.id,
        attempt=attempt,
        max_attempts=max_attempts,
    )
