"""Read-side queries over the outbox: status per handler, the dead-letter queue, held deliveries, the event log
and the causal tree of a workflow."""

import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Count, Exists, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from .models import Delivery, DeliveryFailure, HandlerCircuit, OutboxEvent
from .subscriptions import subscriptions
from .tracing import workflow_resolvers

Status = Delivery.Status


@dataclass(frozen=True)
class HandlerStatus:
    handler: str
    pending: int
    dispatched: int
    dead: int
    oldest_pending_age: timedelta | None


def handler_statuses() -> list[HandlerStatus]:
    """Unfinished and dead work per handler; reads only the partial index of unfinished rows."""
    rows = (
        Delivery.objects.exclude(status=Status.DONE)
        .values("handler")
        .annotate(
            pending=Count("id", filter=Q(status=Status.PENDING)),
            dispatched=Count("id", filter=Q(status=Status.DISPATCHED)),
            dead=Count("id", filter=Q(status=Status.DEAD, resolved_at__isnull=True)),
            oldest=Min("created_at", filter=Q(status__in=Delivery.UNFINISHED)),
        )
    )
    now = timezone.now()
    found = {
        row["handler"]: HandlerStatus(
            row["handler"],
            row["pending"],
            row["dispatched"],
            row["dead"],
            now - row["oldest"] if row["oldest"] else None,
        )
        for row in rows
    }
    for sub in subscriptions.all():
        found.setdefault(sub.name, HandlerStatus(sub.name, 0, 0, 0, None))
    return sorted(found.values(), key=lambda s: s.handler)


def dead_letters(*, handler: str | None = None) -> QuerySet[Delivery]:
    queryset = Delivery.objects.filter(status=Status.DEAD, resolved_at__isnull=True).select_related("event")
    if handler:
        queryset = queryset.filter(handler=handler)
    return queryset.order_by("id")


# Dead letters grouped by cause --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterGroup:
    """Dead, unresolved deliveries of one handler that failed the same way: exception type and masked message."""

    id: str
    handler: str
    error_type: str
    error_pattern: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    example_id: int  # the group's latest letter
    example_error: str = ""
    example_traceback: str = ""


GROUP_ID = re.compile(r"[0-9a-f]{12}")


def dead_letter_group_id(handler: str, error_type: str, error_pattern: str) -> str:
    """A short name for a cause, the same wherever and whenever it is computed: for URLs and commands."""
    return hashlib.sha256("\x1f".join((handler, error_type, error_pattern)).encode()).hexdigest()[:12]


class DeadLetterGroups:
    """Groups, largest first, counted and sliced in the database.

    A slice reads only its own groups' examples, so a page of a paginated
    list costs two queries however many groups there are, both served by
    the ``outbox_delivery_dead_cause`` partial index.
    """

    def __init__(self, rows: QuerySet) -> None:
        self._rows = rows

    def count(self) -> int:
        return self._rows.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[DeadLetterGroup]:
        return _with_examples(list(self._rows[index]))

    def __iter__(self) -> Iterator[DeadLetterGroup]:
        return iter(self[:])


def dead_letter_groups(*, handler: str | None = None) -> DeadLetterGroups:
    return DeadLetterGroups(_grouped(dead_letters(handler=handler)))


def dead_letter_group(*, group_id: str) -> DeadLetterGroup | None:
    """The group named ``group_id``; None when no dead letter has that cause (any more)."""
    cause = _cause_named(group_id)
    found = DeadLetterGroups(_grouped(_with_cause(*cause)))[:1] if cause else []
    return found[0] if found else None


def dead_letters_of_group(group: DeadLetterGroup) -> QuerySet[Delivery]:
    """The group's letters, oldest first."""
    return _with_cause(group.handler, group.error_type, group.error_pattern)


def _with_cause(handler: str, error_type: str, error_pattern: str) -> QuerySet[Delivery]:
    return dead_letters().filter(handler=handler, error_type=error_type, error_pattern=error_pattern)


def _grouped(letters: QuerySet[Delivery]) -> QuerySet:
    return (
        letters.order_by()
        .values("handler", "error_type", "error_pattern")
        .annotate(count=Count("id"), first_seen=Min("finished_at"), last_seen=Max("finished_at"), example_id=Max("id"))
        .order_by("-count", "handler", "error_type", "error_pattern")
    )


def _cause_named(group_id: str) -> tuple[str, str, str] | None:
    """The (handler, type, pattern) whose id is ``group_id``: the ids are hashes, so every cause is hashed."""
    if not GROUP_ID.fullmatch(group_id):
        return None
    causes = dead_letters().order_by().values_list("handler", "error_type", "error_pattern").distinct()
    return next((cause for cause in causes if dead_letter_group_id(*cause) == group_id), None)


def _with_examples(rows: list[dict]) -> list[DeadLetterGroup]:
    examples = Delivery.objects.only("last_error", "traceback").in_bulk([row["example_id"] for row in rows])
    groups = []
    for row in rows:
        example = examples.get(row["example_id"])
        groups.append(
            DeadLetterGroup(
                id=dead_letter_group_id(row["handler"], row["error_type"], row["error_pattern"]),
                example_error=example.last_error if example else "",
                example_traceback=example.traceback if example else "",
                **row,
            )
        )
    return groups


# Deliveries held by an ordered handler ------------------------------------------------------------------------


def deliveries_held(*, delivery_ids: Iterable[int] | None = None, handler: str | None = None) -> dict[int, Delivery]:
    """Of the pending deliveries of ordered handlers (these ids, or this handler's), those the relay holds back.

    Maps each to the delivery it waits for: the earliest earlier delivery of
    its handler and aggregate that holds it (see ``relay._dispatchable``):
    unfinished, or dead and unresolved for an ``on_dead="stop"`` handler.
    That head of the line is what an operator retries or discards to release
    the rest. One index probe per pending delivery, on ``outbox_delivery_ordered``.
    """
    pending = Delivery.objects.filter(status=Status.PENDING, ordering_key__isnull=False)
    if delivery_ids is not None:
        pending = pending.filter(id__in=list(delivery_ids))
    if handler:
        pending = pending.filter(handler=handler)
    head = _holding().order_by("event_id").values("id")[:1]
    rows = pending.annotate(held_by=Subquery(head)).values_list("id", "held_by")
    waits = {delivery_id: held_by for delivery_id, held_by in rows if held_by is not None}  # one probe a row, not two
    if not waits:
        return {}
    blockers = Delivery.objects.select_related("event").in_bulk(set(waits.values()))
    return {held: blockers[by] for held, by in waits.items() if by in blockers}


def held_behind_dead_counts() -> dict[str, int]:
    """Pending deliveries held behind a dead, unresolved earlier delivery of their aggregate, per handler.

    Only ``on_dead="stop"`` handlers hold so (each listed, 0 when none is
    held). One query over unfinished work only, never the done rows: the
    pending rows of those handlers are semi-joined to the aggregates that have
    a dead letter, and only those probe ``outbox_delivery_ordered`` for it
    (12 ms here with 6,800 pending among 300,000 deliveries).
    """
    stopping = _stopping_handlers()
    if not stopping:
        return {}
    dead = Delivery.objects.filter(
        status=Status.DEAD, resolved_at__isnull=True, ordering_key__isnull=False, handler__in=stopping
    )
    dead_before = dead.filter(
        handler=OuterRef("handler"), ordering_key=OuterRef("ordering_key"), event_id__lt=OuterRef("event_id")
    )
    rows = (
        Delivery.objects.filter(status=Status.PENDING, handler__in=stopping)
        .filter(ordering_key__in=dead.values("ordering_key"))
        .filter(Exists(dead_before))
        .order_by()
        .values("handler")
        .annotate(held=Count("id"))
    )
    return {**dict.fromkeys(stopping, 0), **{row["handler"]: row["held"] for row in rows}}


def _holding() -> QuerySet[Delivery]:
    """Earlier deliveries of the outer delivery's handler and aggregate that hold it back, as the relay sees them."""
    return Delivery.objects.filter(
        handler=OuterRef("handler"),
        ordering_key=OuterRef("ordering_key"),
        event_id__lt=OuterRef("event_id"),
    ).filter(
        Q(status__in=Delivery.UNFINISHED)
        | Q(status=Status.DEAD, resolved_at__isnull=True, handler__in=_stopping_handlers())
    )


def _stopping_handlers() -> list[str]:
    return sorted(s.name for s in subscriptions.all() if s.ordered and s.on_dead == "stop")


# The event log and the causal tree of a workflow ---------------------------------------------------------------


def events_search(
    *,
    event_type: str | None = None,
    correlation_id: UUID | None = None,
    aggregate_type: str | None = None,
    aggregate_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[OutboxEvent]:
    """The stored events that match every filter given, in log order, each with its deliveries.

    ``since`` is inclusive and ``until`` exclusive, on ``occurred_at``. A
    correlation id, or an aggregate type with its id, is served by an index;
    a type or a time span alone reads the whole log (no index is kept for
    them: every one would cost the write path).
    """
    filters = {
        "type": event_type,
        "correlation_id": correlation_id,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "occurred_at__gte": since,
        "occurred_at__lt": until,
    }
    events = OutboxEvent.objects.filter(**{name: value for name, value in filters.items() if value is not None})
    return events.prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))).order_by("id")


def caused_events(events: Sequence[OutboxEvent]) -> dict[UUID, list[UUID]]:
    """For each of ``events``, the ids of the events it caused in its workflow, in log order.

    One query, on the correlation index (``causation_id`` has none: the
    events an event causes carry its correlation id).
    """
    found: dict[UUID, list[UUID]] = {event.event_id: [] for event in events}
    if not events:
        return found
    rows = (
        OutboxEvent.objects.filter(
            correlation_id__in={event.correlation_id for event in events}, causation_id__in=list(found)
        )
        .order_by("id")
        .values_list("causation_id", "event_id")
    )
    for cause, event_id in rows:
        if cause is not None:  # never: the query asks for these causes
            found[cause].append(event_id)
    return found


@dataclass(frozen=True)
class HandlerRun:
    """One delivery of a traced event: the handler, its status and attempts, how long it took, each failed attempt."""

    delivery: Delivery
    # From the event's occurred_at (set as its transaction wrote it, just before that commits) to the
    # delivery's finished_at (the database's now() in the transaction that marked it done with the handler's
    # effects, i.e. when that began; or when it died); None while it is unfinished.
    took: timedelta | None
    failed_attempts: int  # counted from attempts (deliveries that failed before 0013 have no failure rows)
    failures: tuple[DeliveryFailure, ...] = ()  # every failed attempt recorded, in order

    @property
    def took_ms(self) -> float | None:
        return self.took.total_seconds() * 1000 if self.took is not None else None


@dataclass(frozen=True)
class TraceNode:
    """One event of a workflow, its handlers' runs, and the events it caused (``children``, in log order)."""

    event: OutboxEvent
    runs: tuple[HandlerRun, ...]
    children: tuple["TraceNode", ...]

    def walk(self) -> Iterator[tuple[int, "TraceNode"]]:
        """This node and every node under it, depth first in log order, each with its depth below this one."""
        stack = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))

    def path_to(self, event_id: UUID) -> list["TraceNode"] | None:
        """The nodes from this one down to the event's (both included), or None when it is not under this one."""
        path: list[TraceNode] = []
        for depth, node in self.walk():
            del path[depth:]
            path.append(node)
            if node.event.event_id == event_id:
                return path
        return None


def causal_tree(*, correlation_id: UUID, limit: int | None = None) -> list[TraceNode]:
    """The workflow's events (the first ``limit`` in the log, or all) as trees, each under the one that caused it.

    The roots, in log order, are the events whose cause (``causation_id``) is
    outside the workflow: a request, or nothing. An event is counted its
    cause's child only if the cause is earlier in the log, as every real cause
    is: a corrupted link can then hide no event in a cycle, and the first
    ``limit`` events are whole trees. Three queries, on the correlation index,
    the deliveries' (event, handler) index and the failures' delivery index.
    """
    failures = Prefetch("failures", queryset=DeliveryFailure.objects.order_by("id"))
    deliveries = Prefetch(
        "deliveries", queryset=Delivery.objects.defer("traceback").prefetch_related(failures).order_by("id")
    )
    log = OutboxEvent.objects.filter(correlation_id=correlation_id).prefetch_related(deliveries).order_by("id")
    events = list(log[:limit] if limit is not None else log)
    position = {event.event_id: event.id for event in events}
    caused: dict[UUID, list[OutboxEvent]] = defaultdict(list)
    roots = []
    for event in events:
        cause = event.causation_id
        if cause is not None and position.get(cause, event.id) < event.id:
            caused[cause].append(event)
        else:
            roots.append(event)
    nodes: dict[UUID, TraceNode] = {}
    for event in reversed(events):  # children, later in the log, are built before their causes: no recursion
        runs = tuple(_run(event, delivery) for delivery in event.deliveries.all())
        nodes[event.event_id] = TraceNode(event, runs, tuple(nodes[child.event_id] for child in caused[event.event_id]))
    return [nodes[event.event_id] for event in roots]


def _run(event: OutboxEvent, delivery: Delivery) -> HandlerRun:
    took = delivery.finished_at - event.occurred_at if delivery.finished_at else None
    if delivery.status == Status.DONE or (delivery.status == Status.DISPATCHED and delivery.started_at):
        failed = max(0, delivery.attempts - 1)  # the last attempt succeeded, or is running
    else:
        failed = delivery.attempts
    return HandlerRun(delivery, took, failed, tuple(delivery.failures.all()))


@dataclass(frozen=True)
class Workflow:
    """The workflow an id names; for an event id, also that event."""

    correlation_id: UUID
    named_by: str  # what the id is the id of: "event", "workflow", or a resolver's name ("order")
    event_id: UUID | None = None


def workflow_named(*, ident: UUID) -> Workflow | None:
    """The workflow ``ident`` names: an event's, a correlation id, or what a registered resolver maps it to."""
    correlation_id = OutboxEvent.objects.filter(event_id=ident).values_list("correlation_id", flat=True).first()
    if correlation_id is not None:
        return Workflow(correlation_id, "event", event_id=ident)
    if OutboxEvent.objects.filter(correlation_id=ident).exists():
        return Workflow(ident, "workflow")
    for resolver in workflow_resolvers.all():
        correlation_id = resolver.resolve(ident)
        if correlation_id is not None:
            return Workflow(correlation_id, resolver.name)
    return None


def workflow_size(*, correlation_id: UUID) -> int:
    """How many events the workflow has (on the correlation index)."""
    return OutboxEvent.objects.filter(correlation_id=correlation_id).count()


def correlation_events(*, correlation_id: UUID, types: Collection[str] | None = None) -> QuerySet[OutboxEvent]:
    """The events of one workflow (only those of ``types``, when given), in the order they were written.

    Served by the ``outbox_event_correlation`` index: one workflow's events
    cost the same however long the log.
    """
    events = OutboxEvent.objects.filter(correlation_id=correlation_id)
    if types is not None:
        events = events.filter(type__in=sorted(types))
    return events.order_by("id")


def shared_starts(deliveries: Iterable[Delivery]) -> set[datetime]:
    """Of these deliveries' start times, those several unfinished deliveries share: a batch that died together.

    A runner starts its whole batch in one statement, so its deliveries carry
    the same ``started_at``. When such a batch loses its worker, which of them
    killed it (if any did) is unknown until each runs alone.
    """
    started = {d.started_at for d in deliveries if d.started_at is not None}
    if not started:
        return set()
    together = (
        Delivery.objects.filter(status=Status.DISPATCHED, started_at__in=started)
        .order_by()
        .values("started_at")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    return {row["started_at"] for row in together if row["started_at"] is not None}  # all are: started_at__in


def handler_circuits() -> list[HandlerCircuit]:
    """Every subscribed handler's circuit, closed ones included (unsaved where no row exists yet)."""
    rows = {c.handler: c for c in HandlerCircuit.objects.all()}
    return [rows.get(name) or HandlerCircuit(handler=name) for name in sorted(s.name for s in subscriptions.all())]
