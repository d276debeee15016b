"""The relay: committed events -> one delivery per subscribed handler -> Celery tasks.

A relay pass does two things, each in short transactions that claim rows
with ``SELECT ... FOR UPDATE SKIP LOCKED`` so that any number of relays can
run at once without dispatching a delivery twice:

1. **Fan out** events not yet relayed (``relayed_at IS NULL``). Events are
   found by that mark, not by an "after id N" cursor, so an event whose
   transaction took an id early and committed late is simply found by a
   later pass: there is no gap to fall into.
2. **Dispatch** due deliveries: new ones, ones whose retry time came, and
   dispatched ones whose lease ran out. A dispatch is not an attempt: only a
   handler that started is (the runner records it). A lease that ran out
   before any handler started is renewed while the delivery's queue has not
   reached it (a slow queue, or every worker down: one message per delivery
   stays in the broker, however long that lasts); once the queue has moved
   past it (the broker lost the message, a worker died holding it) the
   delivery is sent again, each time after a lease twice as long, up to
   ``LEASE_CAP_SECONDS``. The runner drops any copy whose dispatch token is
   not the row's current one. A lease that ran out
   after a handler started means its worker was lost: that attempt is
   recorded as failed ("worker lost") and the delivery goes on in a task of
   its own, or is dead if that was its last attempt.

Tasks are sent only after the claiming transaction commits, and carry only
delivery ids and the dispatch token; the delivery row is the truth, never the
broker. Leases and due times are set and compared on the database's clock.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import timedelta

from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from . import breaker, dispatch, failure_log, failures, metrics, postgresql, selectors, telemetry
from .clock import db_now_plus
from .conf import outbox_setting
from .dispatch import new_dispatch_token
from .events import registry
from .failures import not_subscribed_error, worker_lost_error
from .models import UNKNOWN_TYPE_HANDLER, Delivery, OutboxEvent
from .subscriptions import subscriptions

logger = logging.getLogger(__name__)

Status = Delivery.Status


@dataclass
class RelayStats:
    fanned_out: int = 0
    dispatched: int = 0
    dead: int = 0
    held: int = 0  # deliveries fanned out pending, for an ordered handler to release
    resent: int = 0  # of the dispatched: leases that ran out before a handler started
    lost: int = 0  # of the dispatched and dead: attempts whose worker was lost
    waiting: int = 0  # leases renewed, not sent again: their queue has not reached them yet

    def add(self, other: "RelayStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def relay_pass(*, max_seconds: float = 5.0, sweep: bool = True) -> RelayStats:
    """Fan out and dispatch until no full batch is left, or ``max_seconds`` passed.

    ``sweep=False`` (the relay process, woken by a commit) skips looking for
    due deliveries (retries, expired leases) unless the fan-out itself left
    some for an ordered handler: new deliveries of the others are already
    dispatched, and sweeping on every commit would cost more than the
    fan-out. The process sweeps on its poll interval instead.
    """
    total = RelayStats()
    batch = outbox_setting("RELAY_BATCH_SIZE")
    deadline = time.monotonic() + max_seconds
    with telemetry.relaying() as span:  # the tasks it sends carry its context (Celery's instrumentation)
        while True:
            with metrics.RELAY_BATCH_SECONDS.time():
                stats = fan_out(batch_size=batch)
                if sweep or stats.held:
                    stats.add(dispatch_due(batch_size=batch))
            total.add(stats)
            if (stats.fanned_out < batch and stats.dispatched + stats.dead < batch) or time.monotonic() > deadline:
                telemetry.relayed(span, fanned_out=total.fanned_out, dispatched=total.dispatched, dead=total.dead)
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
        now, token = timezone.now(), new_dispatch_token()
        blocked = {c.handler for c in breaker.blocked_circuits()}
        deliveries = [d for event in events for d in deliveries_for(event, now, token, blocked)]
        Delivery.objects.bulk_create(deliveries)
        OutboxEvent.objects.filter(id__in=[e.id for e in events]).update(relayed_at=now)
        to_send = [d for d in deliveries if d.status == Status.DISPATCHED]
        transaction.on_commit(lambda: _relayed([e.type for e in events], to_send, token))
    return RelayStats(fanned_out=len(events), dispatched=len(to_send), held=_held([e.type for e in events]))


def _fan_out_postgresql(batch_size: int) -> RelayStats:
    subs = [s for name in registry.names() for s in subscriptions.for_type(name)]
    token = new_dispatch_token()
    types, to_send = postgresql.fan_out(
        batch_size=batch_size, token=token, subscriptions=subs, known_types=registry.names()
    )
    transaction.on_commit(lambda: _relayed(types, to_send, token))
    return RelayStats(fanned_out=len(types), dispatched=len(to_send), held=_held(types))


def _held(types: list[str]) -> int:
    """How many of these events' deliveries were created pending, for ordered handlers."""
    return sum(1 for t in types for s in subscriptions.for_type(t) if s.ordered)


def _relayed(types: list[str], to_send: list[Delivery], token: int) -> None:
    dispatch.send(to_send, token=token)
    metrics.record_events_relayed(types)


def deliveries_for(event: OutboxEvent, now, token: int, blocked: set[str]) -> Iterable[Delivery]:
    """An event's deliveries: dispatched under ``token``, or pending for an ordered or held-back handler."""
    if not registry.is_registered(event.type):
        yield Delivery(
            event=event,
            handler=UNKNOWN_TYPE_HANDLER,
            queue="outbox",
            status=Status.DEAD,
            due_at=now,
            finished_at=now,
            last_error=failures.unknown_type_error(event.type),
            error_type=failures.UNKNOWN_TYPE,
            error_pattern=failures.UNKNOWN_TYPE_PATTERN,
        )
        return
    lease_until = now + timedelta(seconds=outbox_setting("LEASE_SECONDS"))
    for sub in subscriptions.for_type(event.type):
        if sub.ordered or sub.name in blocked:
            key = event.ordering_key if sub.ordered else None
            yield Delivery(event=event, handler=sub.name, queue=sub.queue, due_at=now, ordering_key=key)
        else:
            yield Delivery(
                event=event,
                handler=sub.name,
                queue=sub.queue,
                status=Status.DISPATCHED,
                due_at=lease_until,
                dispatched_at=now,
                dispatch_token=token,
            )


def dispatch_due(*, batch_size: int) -> RelayStats:
    """Dispatch deliveries that are due: new, retrying, or with an expired lease.

    Pending deliveries of a handler whose circuit is open, half-open or
    paused stay where they are; an open circuit past its cool-down gets one
    probe delivery. Dispatched ones keep their lease's course whatever the
    circuit: a runner given one parks it.
    """
    blocked = breaker.blocked_circuits()
    if blocked:
        _park_unstarted(blocked)
    stats = _dispatch_probes() if any(not c.paused for c in blocked) else RelayStats()
    with transaction.atomic():
        if connections["default"].vendor == "postgresql":
            postgresql.prefer_index_scans()
        due = list(
            _dispatchable()
            .exclude(status=Status.PENDING, handler__in=[c.handler for c in blocked])
            .order_by("due_at")
            .select_for_update(skip_locked=True, of=("self",))
            .only(*DUE_FIELDS)[:batch_size]
        )
        if not due:
            return stats
        token = new_dispatch_token()
        to_send, still_queued = [], _still_queued(due)
        _extend_leases([d for d in due if d.id in still_queued])
        stats.waiting = len(still_queued)
        shared, refunded = selectors.shared_starts(due), set()
        for delivery in (d for d in due if d.id not in still_queued):
            verdict = _verdict(delivery, shared_batch=delivery.started_at in shared)
            if verdict.dead:
                _bury(delivery, verdict.error, lost=verdict.lost)
                stats.dead += 1
            else:
                to_send.append(delivery)
            if verdict.refund:
                refunded.add(delivery.id)
            stats.resent += verdict.resend
            stats.lost += verdict.lost
        _mark_dispatched(to_send, token, refunded=refunded)
        stats.dispatched += len(to_send)
        transaction.on_commit(lambda: _dispatched(to_send, token, stats))
    return stats


DUE_FIELDS = (
    *("id", "handler", "queue", "status", "attempts", "started_at", "redispatches", "crashes"),
    *("ordering_key", "event_id"),
)


def _park_unstarted(blocked: list) -> int:
    """Dispatched deliveries of held-back handlers whose lease ran out unstarted wait, pending, instead of a resend.

    Sending them again would only put a copy in the broker for a runner to
    park; the copy already there, if any, is dropped when it comes up (its
    token is no longer the row's). A circuit's probe keeps its lease's course.
    """
    probes = [c.probe_delivery_id for c in blocked if c.probe_delivery_id]
    return (
        Delivery.objects.filter(
            status=Status.DISPATCHED,
            started_at__isnull=True,
            handler__in=[c.handler for c in blocked],
            due_at__lte=Now(),
        )
        .exclude(id__in=probes)
        .update(status=Status.PENDING, dispatch_token=None, due_at=Now())
    )


def _dispatch_probes() -> RelayStats:
    """Send one delivery through each circuit past its cool-down, or whose probe is no longer under way."""
    with transaction.atomic():
        circuits = list(breaker.due_for_probe().select_for_update(skip_locked=True))
        if not circuits:
            return RelayStats()
        token, probes = new_dispatch_token(), []
        for circuit in circuits:
            probe = (
                _dispatchable()
                .filter(handler=circuit.handler, status=Status.PENDING)
                .order_by("due_at")
                .select_for_update(skip_locked=True, of=("self",))
                .only(*DUE_FIELDS)
                .first()
            )
            breaker.let_probe_through(circuit, probe)
            probes += [probe] if probe else []
        _mark_dispatched(probes, token)
        transaction.on_commit(lambda: dispatch.send(probes, token=token))
    return RelayStats(dispatched=len(probes))


def _dispatchable():
    """Due deliveries, less those of an ordered handler waiting for an earlier event.

    An ordered delivery waits while an earlier delivery of its key is
    unfinished (or dead, for a "stop" handler), and while an earlier event of
    its aggregate is not yet fanned out: that one may be in the hands of
    another relay right now, its deliveries not yet committed.
    """
    stopping = [s.name for s in subscriptions.all() if s.ordered and s.on_dead == "stop"]
    earlier = Delivery.objects.filter(
        handler=OuterRef("handler"),
        ordering_key=OuterRef("ordering_key"),
        event_id__lt=OuterRef("event_id"),
    ).filter(Q(status__in=Delivery.UNFINISHED) | Q(status=Status.DEAD, resolved_at__isnull=True, handler__in=stopping))
    unrelayed = OutboxEvent.objects.filter(
        relayed_at__isnull=True,
        aggregate_type=OuterRef("event__aggregate_type"),
        aggregate_id=OuterRef("event__aggregate_id"),
        id__lt=OuterRef("event_id"),
    )
    return Delivery.objects.filter(status__in=Delivery.UNFINISHED, due_at__lte=Now()).filter(
        Q(ordering_key__isnull=True) | (~Exists(earlier) & ~Exists(unrelayed))
    )


def _still_queued(due: list[Delivery]) -> set[int]:
    """Of the due deliveries no handler started, those their queue has not yet reached.

    Queues are consumed in order: if a delivery sent to the same queue after
    this one has started, the queue has moved past this one's message, which
    was lost (a broker that forgot, a worker that died holding it) and is sent
    again. If nothing sent after it has started but something sent after it
    still waits, the queue is merely slow or nobody consumes it (workers
    down): the message is still there, and sending another copy would only
    pile copies up. With nothing sent after it, there is no telling: it is
    sent again.
    """
    unstarted = [d.id for d in due if d.status == Status.DISPATCHED and d.started_at is None]
    if not unstarted:
        return set()
    later = Delivery.objects.filter(queue=OuterRef("queue"), dispatched_at__gt=OuterRef("dispatched_at"))
    rows = (
        Delivery.objects.filter(id__in=unstarted)
        .annotate(
            passed=Exists(later.filter(started_at__isnull=False)),
            behind=Exists(later.filter(status=Status.DISPATCHED, started_at__isnull=True)),
        )
        .values_list("id", "passed", "behind")
    )
    return {delivery_id for delivery_id, passed, behind in rows if behind and not passed}


def _extend_leases(deliveries: list[Delivery]) -> None:
    """Give deliveries still waiting in their queue another lease; their message is not sent again."""
    if deliveries:
        lease = outbox_setting("LEASE_SECONDS")
        Delivery.objects.filter(id__in=[d.id for d in deliveries]).update(due_at=db_now_plus(lease))


@dataclass(frozen=True)
class _Verdict:
    dead: bool = False
    error: str = ""
    resend: bool = False  # a lease ran out before any handler started
    lost: bool = False  # a lease ran out on a started attempt: its worker was lost
    refund: bool = False  # that lost attempt was its last, in a batch shared with others: not charged to it


def _verdict(delivery: Delivery, *, shared_batch: bool = False) -> _Verdict:
    """What a due delivery needs: sending (again), or burying."""
    sub = subscriptions.get(delivery.handler)
    if sub is None and delivery.handler != UNKNOWN_TYPE_HANDLER:
        return _Verdict(dead=True, error=not_subscribed_error(delivery.handler))
    if delivery.status == Status.PENDING:
        return _Verdict()
    if delivery.started_at is None:
        return _Verdict(resend=True)
    max_attempts = sub.setting("MAX_ATTEMPTS") if sub else 1
    if delivery.attempts >= max_attempts:
        if shared_batch:
            return _Verdict(lost=True, refund=True)
        return _Verdict(dead=True, lost=True, error=worker_lost_error(delivery.attempts, max_attempts, last=True))
    return _Verdict(lost=True)


def _mark_dispatched(deliveries: list[Delivery], token: int, *, refunded: Set[int] = frozenset()) -> None:
    """Mark the deliveries dispatched under ``token``, with their leases on the database's clock."""
    groups: dict[tuple[str, float], list[int]] = defaultdict(list)
    for delivery in deliveries:
        kind = _dispatch_kind(delivery)
        if kind == "lost":
            _mark_lost(delivery, token, refund=delivery.id in refunded)
        else:
            groups[(kind, _lease_seconds(delivery, kind))].append(delivery.id)
    for (kind, lease), ids in groups.items():
        fields = {
            "status": Status.DISPATCHED,
            "dispatch_token": token,
            "dispatched_at": Now(),
            "due_at": db_now_plus(lease),
        }
        if kind == "resend":
            fields["redispatches"] = F("redispatches") + 1
        Delivery.objects.filter(id__in=ids).update(**fields)


def _dispatch_kind(delivery: Delivery) -> str:
    if delivery.status == Status.PENDING:
        return "new"
    return "resend" if delivery.started_at is None else "lost"


def _lease_seconds(delivery: Delivery, kind: str) -> float:
    """A full lease; after each send whose lease ran out unstarted, twice as long, up to the cap."""
    lease = outbox_setting("LEASE_SECONDS")
    if kind != "resend":
        return lease
    return min(outbox_setting("LEASE_CAP_SECONDS"), lease * 2 ** min(delivery.redispatches + 1, 20))


def _mark_lost(delivery: Delivery, token: int, *, refund: bool = False) -> None:
    """Record the attempt whose worker was lost, and send the delivery on, alone (``refund``: that attempt again)."""
    sub = subscriptions.get(delivery.handler)
    error = worker_lost_error(delivery.attempts, sub.setting("MAX_ATTEMPTS") if sub else 1, last=refund, shared=refund)
    Delivery.objects.filter(id=delivery.id).update(
        attempts=F("attempts") - int(refund),
        status=Status.DISPATCHED,
        dispatch_token=token,
        dispatched_at=Now(),
        due_at=db_now_plus(outbox_setting("LEASE_SECONDS")),
        crashes=F("crashes") + 1,
        started_at=None,
        last_error=error,
        error_type=failures.WORKER_LOST,
        error_pattern=failures.error_pattern(error),
        traceback="",
    )
    _record_lost_attempt(delivery, error, counted=not refund)
    delivery.crashes += 1  # as the row is now, so that its task travels alone
    logger.warning("outbox: delivery %s to %s: %s", delivery.id, delivery.handler, error)


def _bury(delivery: Delivery, error: str, *, lost: bool = False) -> None:
    Delivery.objects.filter(id=delivery.id).update(
        status=Status.DEAD,
        finished_at=Now(),
        last_error=error,
        error_type=failures.WORKER_LOST if lost else failures.NOT_SUBSCRIBED,
        error_pattern=failures.error_pattern(error),
        traceback="",
        started_at=None,
        crashes=F("crashes") + int(lost),
    )
    if lost:  # its last attempt's worker was lost (a delivery no one subscribes to had no attempt)
        _record_lost_attempt(delivery, error, counted=True)
    logger.error("outbox: delivery %s to %s is dead: %s", delivery.id, delivery.handler, error)


def _record_lost_attempt(delivery: Delivery, error: str, *, counted: bool) -> None:
    """Keep the attempt whose worker was lost among the delivery's failed attempts (for the trace)."""
    failure_log.failed_attempt_record(
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        cause=failure_log.Cause.WORKER_LOST,
        error_type=failures.WORKER_LOST,
        error=error,
        counted=counted,
    )


def _dispatched(deliveries: list[Delivery], token: int, stats: RelayStats) -> None:
    dispatch.send(deliveries, token=token)
    metrics.record_redispatches(resent=stats.resent, lost=stats.lost, renewed=stats.waiting)
