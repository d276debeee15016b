"""Replay: past events of the log delivered again, to one handler.

``manage.py outbox_replay`` creates one handler's deliveries for past events,
a batch per transaction, and the relay and the workers deliver them as they
deliver any other. What it promises:

- **That handler only.** It creates deliveries of that handler and touches no
  other row but its own progress row (and, for a rebuild, the handler's own
  finished deliveries and inbox rows).
- **Once.** A delivery is unique per (event, handler): an event that has one,
  done, dead or under way, gets no second, and none is made for an event the
  handler's inbox says it handled (the runner would skip it all the same).
  A second run delivers nothing.
- **Resumable.** A batch's deliveries and the replay's cursor
  (:class:`~outbox.models.ReplayProgress`) commit together: killed at any
  point, the same command goes on from the first event it had not done.
- **Beside live traffic.** Replayed deliveries go to ``<queue>.replay``, a
  Celery queue of their own that a worker of its own consumes: live messages
  never wait behind history, and a runner that takes its queue's backlog
  along takes replay work only from the replay queue. At most ``window`` of
  them are unfinished at a time, so neither the relay's sweep nor the broker
  ever holds the whole history.
- **Relayed events only.** The relay creates the deliveries of an event it
  has not fanned out yet (with a plain INSERT, which a replayed delivery of
  the same event would break); the replay's last event is fixed when it
  starts, and later events are the relay's. Events that commit late, below
  that point, are the relay's as well.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.db.models.functions import Now

from .dispatch import kick_relay_on_commit
from .models import Delivery, InboxEntry, OutboxEvent, ReplayProgress
from .subscriptions import Subscription, subscriptions

Status = Delivery.Status
REPLAY_QUEUE_SUFFIX = ".replay"


class ReplayRefused(ValueError):
    """A replay was asked for something it cannot do. Nothing was changed."""


@dataclass(frozen=True)
class ReplayScope:
    """Which past events one replay delivers, to which handler, on which queue.

    ``since`` is inclusive, ``until`` exclusive, both on ``occurred_at``.
    ``history``: the subscription's declared history (``history_from``),
    delivered once. ``rebuild``: the handler's read model emptied, then the
    whole log delivered again.
    """

    handler: str
    event_type: str
    queue: str
    since: datetime | None = None
    until: datetime | None = None
    aggregate: str | None = None
    history: bool = False
    rebuild: bool = False

    @property
    def key(self) -> str:
        """The scope written out: the progress row a run of the same scope resumes."""
        parts = ["history" if self.history else "rebuild" if self.rebuild else "replay", f"type={self.event_type}"]
        parts += [f"since={self.since.isoformat()}"] if self.since else []
        parts += [f"until={self.until.isoformat()}"] if self.until else []
        parts += [f"aggregate={self.aggregate}"] if self.aggregate is not None else []
        return " ".join(parts)


@dataclass(frozen=True)
class ReplayStep:
    scanned: int  # matching events this batch went past
    created: int  # deliveries it created (or, rebuilding, ran again)
    finished: bool


def replay_scope(
    *,
    handler: str,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    aggregate: str | None = None,
    queue: str | None = None,
    rebuild: bool = False,
) -> ReplayScope:
    """The scope of a replay to ``handler``, or ``ReplayRefused`` saying what is wrong with it."""
    subscription = subscriptions.get(handler)
    if subscription is None:
        raise ReplayRefused(f"No handler named {handler!r} is subscribed here: `outbox_status` lists the handlers.")
    if event_type is not None and event_type != subscription.event_type:
        raise ReplayRefused(f"{handler} subscribes to {subscription.event_type}, not to {event_type}.")
    if since is not None and until is not None and since >= until:
        raise ReplayRefused(f"--since ({since.isoformat()}) is not before --until ({until.isoformat()}).")
    if rebuild:
        _check_rebuild(subscription, since, until, aggregate)
    return ReplayScope(
        handler=handler,
        event_type=subscription.event_type,
        queue=queue or replay_queue(subscription),
        since=since,
        until=until,
        aggregate=aggregate,
        rebuild=rebuild,
    )


def _subscription(scope: ReplayScope) -> Subscription:
    """The scope's handler, still subscribed (a replay resumed after a release that removed it is refused)."""
    subscription = subscriptions.get(scope.handler)
    if subscription is None:
        raise ReplayRefused(f"No handler named {scope.handler!r} is subscribed here any more: nothing was replayed.")
    return subscription


def _check_rebuild(subscription: Subscription, since, until, aggregate) -> None:
    if subscription.rebuild is None:
        raise ReplayRefused(
            f"{subscription.name} declares no read model to rebuild: give its Subscription a rebuild= callable."
        )
    if since is not None or until is not None or aggregate is not None:
        raise ReplayRefused("--rebuild delivers the whole log again: it takes no --since, --until or --aggregate.")


def history_scopes() -> list[ReplayScope]:
    """One scope per subscription that declares ``history_from``: the history it wants delivered once."""
    return [
        ReplayScope(
            handler=s.name,
            event_type=s.event_type,
            queue=replay_queue(s),
            since=None if s.history_from == "all" else s.history_from,
            history=True,
        )
        for s in subscriptions.all()
        if s.history_from is not None
    ]


def replay_queue(subscription: Subscription) -> str:
    return f"{subscription.queue}{REPLAY_QUEUE_SUFFIX}"


# Selectors ----------------------------------------------------------------------------------------------------


def matching_events(scope: ReplayScope) -> QuerySet[OutboxEvent]:
    """The scope's events that the relay has fanned out (see the module's docstring for why only those)."""
    events = OutboxEvent.objects.filter(type=scope.event_type, relayed_at__isnull=False)
    if scope.since is not None:
        events = events.filter(occurred_at__gte=scope.since)
    if scope.until is not None:
        events = events.filter(occurred_at__lt=scope.until)
    if scope.aggregate is not None:
        events = events.filter(aggregate_id=scope.aggregate)
    return events


def replay_plan(scope: ReplayScope) -> tuple[int, int]:
    """What a replay of ``scope`` would do now: (matching events, deliveries it would create or run again)."""
    events = matching_events(scope)
    if scope.rebuild:
        return events.count(), events.count()
    undelivered = events.exclude(deliveries__handler=scope.handler).exclude(
        event_id__in=InboxEntry.objects.filter(handler=scope.handler).values("event_id")
    )
    return events.count(), undelivered.count()


def replay_total(progress: ReplayProgress, scope: ReplayScope) -> int:
    """How many events the replay goes through, from its first to its last."""
    return matching_events(scope).filter(id__lte=progress.last_event).count()


def replay_outstanding(scope: ReplayScope) -> int:
    """The handler's replayed deliveries not yet finished (pending or dispatched on the replay queue)."""
    return Delivery.objects.filter(handler=scope.handler, queue=scope.queue, status__in=Delivery.UNFINISHED).count()


def replay_dead(scope: ReplayScope) -> int:
    """The handler's replayed deliveries that are dead: its dead letters from the replay queue."""
    return Delivery.objects.filter(handler=scope.handler, queue=scope.queue, status=Status.DEAD).count()


# Services -----------------------------------------------------------------------------------------------------


@transaction.atomic
def replay_start(*, scope: ReplayScope) -> ReplayProgress:
    """The replay's progress row: an unfinished one resumed as it is, else the replay (re)started.

    A (re)start fixes the replay's last event: the newest the relay has fanned
    out. A rebuild first empties the handler's read model (its ``rebuild``)
    and drops its inbox rows, in this same transaction, so that no event
    counts as handled whose effects are gone; the last event is read after
    that (an event relayed later has its delivery run after the clear), and
    ``started_at`` is stamped by the database last: every delivery of the
    handler finished before it is run again, and one that started after it
    ran on the emptied model. A history, once finished, is not started again.
    """
    progress = ReplayProgress.objects.select_for_update().filter(handler=scope.handler, scope=scope.key).first()
    if progress is not None and (progress.finished_at is None or scope.history):
        return progress
    if scope.rebuild:
        rebuild = _subscription(scope).rebuild
        if rebuild is None:
            raise ReplayRefused(f"{scope.handler} declares no read model to rebuild any more: nothing was replayed.")
        rebuild()
        InboxEntry.objects.filter(handler=scope.handler).delete()
    last_event = matching_events(scope).aggregate(last=Max("id"))["last"] or 0  # after the clear: see above
    fields = {"queue": scope.queue, "last_event": last_event, "cursor": 0, "scanned": 0, "created": 0}
    progress = progress or ReplayProgress(handler=scope.handler, scope=scope.key, started_at=Now())
    for name, value in {**fields, "started_at": Now(), "finished_at": None}.items():
        setattr(progress, name, value)
    progress.save()
    progress.refresh_from_db()
    return progress


@transaction.atomic
def replay_step(*, scope: ReplayScope, progress_id: int, batch_size: int) -> ReplayStep:
    """Create the handler's deliveries for the next ``batch_size`` events, and move the cursor past them.

    The progress row is locked for the transaction: two runs of the same
    scope take turns, batch by batch, and never do one twice.
    """
    progress = ReplayProgress.objects.select_for_update().get(id=progress_id)
    if progress.finished_at is not None:
        return ReplayStep(scanned=0, created=0, finished=True)
    events = list(
        matching_events(scope)
        .filter(id__gt=progress.cursor, id__lte=progress.last_event)
        .order_by("id")
        .only("id", "event_id", "aggregate_type", "aggregate_id")[:batch_size]
    )
    created = _deliver(scope, events, finished_before=progress.started_at if scope.rebuild else None)
    finished = len(events) < batch_size or events[-1].id >= progress.last_event
    if events:
        progress.cursor = events[-1].id
    progress.scanned += len(events)
    progress.created += created
    progress.finished_at = Now() if finished else None
    progress.save(update_fields=["cursor", "scanned", "created", "finished_at", "updated_at"])
    if created:
        _wake_the_relay()
    return ReplayStep(scanned=len(events), created=created, finished=finished)


def _wake_the_relay() -> None:
    """Have the new pending deliveries dispatched at commit: a kicked relay run, and the relay process woken.

    The NOTIFY is the one ``publish`` sends when it leaves deliveries pending
    (postgresql.PUBLISH_SQL): the relay process sweeps for due deliveries at once.
    """
    kick_relay_on_commit()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify('outbox_event', 'held')")


def _deliver(scope: ReplayScope, events: list[OutboxEvent], *, finished_before: datetime | None) -> int:
    """Create pending deliveries of these events on the replay queue; rebuilding, also run finished ones again.

    Events that have a delivery to the handler, or (not rebuilding) an inbox
    row of it, get none. ``ignore_conflicts`` covers a delivery the runner
    created meanwhile (an unknown type's, become known).
    """
    if not events:
        return 0
    subscription = _subscription(scope)
    delivered = set(
        Delivery.objects.filter(handler=scope.handler, event_id__in=[e.id for e in events]).values_list(
            "event_id", flat=True
        )
    )
    handled = set() if scope.rebuild else _handled(scope.handler, [e.event_id for e in events])
    new = [
        Delivery(
            event_id=event.id,
            handler=scope.handler,
            queue=scope.queue,
            status=Status.PENDING,
            due_at=Now(),
            ordering_key=event.ordering_key if subscription.ordered else None,
        )
        for event in _without(events, delivered, handled)
    ]
    Delivery.objects.bulk_create(new, ignore_conflicts=True)
    again = 0
    if finished_before is not None:
        again = _run_again(scope, [e.id for e in events], finished_before)
    return len(new) + again


def _handled(handler: str, event_ids: list) -> set:
    return set(InboxEntry.objects.filter(handler=handler, event_id__in=event_ids).values_list("event_id", flat=True))


def _without(events: Iterable[OutboxEvent], delivered: set[int], handled: set) -> list[OutboxEvent]:
    return [e for e in events if e.id not in delivered and e.event_id not in handled]


def _run_again(scope: ReplayScope, event_ids: list[int], finished_before: datetime) -> int:
    """Set the handler's deliveries of these events that finished before the rebuild back to pending, on its queue."""
    return Delivery.objects.filter(
        handler=scope.handler,
        event_id__in=event_ids,
        status__in=[Status.DONE, Status.DEAD],
        finished_at__lt=finished_before,
    ).update(
        status=Status.PENDING,
        queue=scope.queue,
        attempts=0,
        crashes=0,
        redispatches=0,
        dispatch_token=None,
        started_at=None,
        dispatched_at=None,
        finished_at=None,
        resolved_at=None,
        resolved_by=None,
        due_at=Now(),
    )
