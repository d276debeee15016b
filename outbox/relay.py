"""The relay: committed events -> one delivery per subscribed handler -> Celery tasks.

A relay pass does two things, each in short transactions that claim rows
with ``SELECT ... FOR UPDATE SKIP LOCKED`` so that any number of relays can
run at once without dispatching a delivery twice:

1. **Fan out** events not yet relayed (``relayed_at IS NULL``). Events are
   found by that mark, not by an "after id N" cursor, so an event whose
   transaction took an id early and committed late is simply found by a
   later pass: there is no gap to fall into.
2. **Dispatch** due deliveries: new ones, ones whose retry time came, and
   dispatched ones whose lease ran out (the worker died, the broker lost the
   message). A dispatch counts as an attempt.

Tasks are sent only after the claiming transaction commits, and carry only
delivery ids; the delivery row is the truth, never the broker.
"""

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from . import postgresql
from .events import registry
from .models import UNKNOWN_TYPE_HANDLER, Delivery, OutboxEvent
from .subscriptions import subscriptions

logger = logging.getLogger(__name__)

KICK_KEY = "outbox:relay-kick"
KICK_TTL_SECONDS = 5  # a lost kick is covered by the sweep long before this
Status = Delivery.Status
# Celery's defaults for apply_async cost 0.78 ms a message here; without the
# argument reprs (for monitors, of delivery ids) and the publish retry loop
# (a send that fails is re-sent by the relay when its lease runs out) 0.35 ms.
CHEAP_SEND = {"argsrepr": "", "kwargsrepr": "", "retry": False}


@dataclass
class RelayStats:
    fanned_out: int = 0
    dispatched: int = 0
    dead: int = 0
    held: int = 0  # deliveries fanned out pending, for an ordered handler to release

    def add(self, other: "RelayStats") -> None:
        self.fanned_out += other.fanned_out
        self.dispatched += other.dispatched
        self.dead += other.dead
        self.held += other.held


def relay_pass(*, max_seconds: float = 5.0, sweep: bool = True) -> RelayStats:
    """Fan out and dispatch until no full batch is left, or ``max_seconds`` passed.

    ``sweep=False`` (the relay process, woken by a commit) skips looking for
    due deliveries (retries, expired leases) unless the fan-out itself left
    some for an ordered handler: new deliveries of the others are already
    dispatched, and sweeping on every commit would cost more than the
    fan-out. The process sweeps on its poll interval instead.
    """
    from . import metrics

    total = RelayStats()
    batch = settings.OUTBOX["RELAY_BATCH_SIZE"]
    deadline = time.monotonic() + max_seconds
    while True:
        with metrics.RELAY_BATCH_SECONDS.time():
            stats = fan_out(batch_size=batch)
            if sweep or stats.held:
                stats.add(dispatch_due(batch_size=batch))
        total.add(stats)
        if (stats.fanned_out < batch and stats.dispatched + stats.dead < batch) or time.monotonic() > deadline:
            return total


def fan_out(*, batch_size: int) -> RelayStats:
    """Create the deliveries of up to ``batch_size`` unrelayed events.

    Deliveries to unordered handlers are created already dispatched and sent
    at once, saving a round trip on the latency path; ordered ones wait for
    :func:`dispatch_due` to check their predecessors.
    """
    if connections["default"].vendor == "postgresql":
        return _fan_out_postgresql(batch_size)
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.filter(relayed_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .only("id", "type", "aggregate_type", "aggregate_id")[:batch_size]
        )
        if not events:
            return RelayStats()
        now = timezone.now()
        deliveries = [d for event in events for d in _deliveries_for(event, now)]
        Delivery.objects.bulk_create(deliveries)
        OutboxEvent.objects.filter(id__in=[e.id for e in events]).update(relayed_at=now)
        to_send = [d for d in deliveries if d.status == Status.DISPATCHED]
        transaction.on_commit(lambda: _relayed([e.type for e in events], to_send))
    return RelayStats(fanned_out=len(events), dispatched=len(to_send), held=_held([e.type for e in events]))


def _fan_out_postgresql(batch_size: int) -> RelayStats:
    subs = [s for name in registry.names() for s in subscriptions.for_type(name)]
    types, to_send = postgresql.fan_out(
        batch_size=batch_size, now=timezone.now(), subscriptions=subs, known_types=registry.names()
    )
    transaction.on_commit(lambda: _relayed(types, to_send))
    return RelayStats(fanned_out=len(types), dispatched=len(to_send), held=_held(types))


def _held(types: list[str]) -> int:
    """How many of these events' deliveries were created pending, for ordered handlers."""
    return sum(1 for t in types for s in subscriptions.for_type(t) if s.ordered)


def _relayed(types: list[str], to_send: list[Delivery]) -> None:
    send(to_send)
    from . import metrics

    metrics.record_events_relayed(types)


def _deliveries_for(event: OutboxEvent, now) -> Iterable[Delivery]:
    if not registry.is_registered(event.type):
        yield Delivery(
            event=event,
            handler=UNKNOWN_TYPE_HANDLER,
            queue="outbox",
            status=Status.DEAD,
            due_at=now,
            finished_at=now,
            last_error=f"Unknown event type {event.type!r}: no class is registered for it, so no handler gets it.",
        )
        return
    lease_until = now + timedelta(seconds=settings.OUTBOX["LEASE_SECONDS"])
    for sub in subscriptions.for_type(event.type):
        if sub.ordered:
            yield Delivery(event=event, handler=sub.name, queue=sub.queue, due_at=now, ordering_key=ordering_key(event))
        else:
            yield Delivery(
                event=event,
                handler=sub.name,
                queue=sub.queue,
                status=Status.DISPATCHED,
                attempts=1,
                due_at=lease_until,
                dispatched_at=now,
            )


def ordering_key(event: OutboxEvent) -> str:
    return f"{event.aggregate_type}:{event.aggregate_id}"


def dispatch_due(*, batch_size: int) -> RelayStats:
    """Dispatch deliveries that are due: new, retrying, or with an expired lease."""
    with transaction.atomic():
        if connections["default"].vendor == "postgresql":
            postgresql.prefer_index_scans()
        now = timezone.now()
        due = list(
            _dispatchable(now)
            .order_by("due_at")
            .select_for_update(skip_locked=True, of=("self",))
            .only("id", "handler", "queue", "status", "attempts", "ordering_key", "event_id")[:batch_size]
        )
        if not due:
            return RelayStats()
        to_send, to_bury = [], []
        for delivery in due:
            (to_bury if _out_of_attempts(delivery) else to_send).append(delivery)
        _bury(to_bury, now)
        Delivery.objects.filter(id__in=[d.id for d in to_send]).update(
            status=Status.DISPATCHED,
            attempts=F("attempts") + 1,
            due_at=now + timedelta(seconds=settings.OUTBOX["LEASE_SECONDS"]),
            dispatched_at=now,
        )
        transaction.on_commit(lambda: send(to_send))
    return RelayStats(dispatched=len(to_send), dead=len(to_bury))


def _dispatchable(now):
    """Due deliveries, less those of an ordered handler waiting for an earlier event."""
    stopping = [s.name for s in subscriptions.all() if s.ordered and s.on_dead == "stop"]
    earlier = Delivery.objects.filter(
        handler=OuterRef("handler"),
        ordering_key=OuterRef("ordering_key"),
        event_id__lt=OuterRef("event_id"),
    ).filter(Q(status__in=Delivery.UNFINISHED) | Q(status=Status.DEAD, resolved_at__isnull=True, handler__in=stopping))
    return Delivery.objects.filter(status__in=Delivery.UNFINISHED, due_at__lte=now).filter(
        Q(ordering_key__isnull=True) | ~Exists(earlier)
    )


def _out_of_attempts(delivery: Delivery) -> bool:
    """A lease that ran out on the last attempt: the worker died every time."""
    sub = subscriptions.get(delivery.handler)
    if sub is None:
        return True
    return delivery.status == Status.DISPATCHED and delivery.attempts >= sub.setting("MAX_ATTEMPTS")


def _bury(deliveries: list[Delivery], now) -> None:
    for delivery in deliveries:
        if subscriptions.get(delivery.handler) is None:
            error = f"No handler named {delivery.handler!r} is subscribed in this deployment."
        else:
            error = (
                f"Lease expired on attempt {delivery.attempts}, the last allowed: "
                "the worker was lost, or the handler outran its lease, every time."
            )
        Delivery.objects.filter(id=delivery.id).update(status=Status.DEAD, finished_at=now, last_error=error)
        logger.error("outbox: delivery %s to %s is dead: %s", delivery.id, delivery.handler, error)


def send(deliveries: list[Delivery]) -> None:
    """Publish one Celery task per batch of one handler's deliveries (ids only).

    Runs after the claiming transaction committed. If the broker refuses, the
    deliveries stay dispatched and are sent again when their lease runs out.
    """
    if not deliveries:
        return
    from config.celery_app import app

    from .tasks import run_deliveries

    size = settings.OUTBOX["TASK_BATCH_SIZE"]
    by_handler: dict[tuple[str, str], list[int]] = defaultdict(list)
    for delivery in deliveries:
        by_handler[(delivery.queue, delivery.handler)].append(delivery.id)
    try:
        with app.producer_or_acquire() as producer:
            for (queue, _handler), ids in by_handler.items():
                for start in range(0, len(ids), size):
                    run_deliveries.apply_async(
                        (ids[start : start + size],), queue=queue, producer=producer, **CHEAP_SEND
                    )
    except Exception:
        logger.exception("outbox: could not send %d deliveries; they are re-sent after their lease", len(deliveries))


def kick_relay_on_commit(using: str = "default") -> None:
    """Ask for a relay run once the current transaction commits (once per transaction)."""
    if not settings.OUTBOX["KICK_ON_COMMIT"]:
        return
    if any(func is kick_relay for _, func, _ in connections[using].run_on_commit):
        return
    transaction.on_commit(kick_relay, using=using)


def kick_relay() -> None:
    """Enqueue a relay run unless one is already queued and has not started.

    The flag is cleared by the relay as it starts, before it claims: a commit
    after that point queues a new run, a commit before it is seen by this one.
    So a burst of 1,000 commits enqueues a handful of runs, not 1,000.
    """
    from .tasks import relay

    try:
        if cache.add(KICK_KEY, 1, timeout=KICK_TTL_SECONDS):
            relay.apply_async(queue="outbox", **CHEAP_SEND)
    except Exception:
        # The commit has happened; the beat sweep delivers the event anyway.
        logger.warning("outbox: relay kick failed; the sweep will pick the event up", exc_info=True)
        with contextlib.suppress(Exception):
            cache.delete(KICK_KEY)


def clear_kick() -> None:
    cache.delete(KICK_KEY)
