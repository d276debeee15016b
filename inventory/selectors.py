"""Read-side queries of the inventory context, for its own API, admin, pages and services.

Other contexts read the catalogue through :mod:`inventory.catalogue` (plain
immutable values), never from here.

Stock now is the ``StockItem`` projection. Stock at a past time is folded
from the SKU's stream in the outbox event log, starting at the latest
snapshot at or before that time (:func:`stock_as_of`). Every fold of a
stream goes through :func:`stock_replay`.
"""

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

from django.db.models import F, IntegerField, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from outbox.events import registry
from outbox.models import OutboxEvent

from .events import StockEvent
from .models import Product, StockItem, StockSnapshot
from .stock import StockState, fold

STOCK_STREAM = StockEvent.aggregate_type


@dataclass(frozen=True)
class StockLevel:
    sku: str
    on_hand: int
    reserved: int
    as_of: dt.datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class StockMovement:
    """One event of a SKU's stream, and the stock right after it."""

    position: int
    occurred_at: dt.datetime
    type: str
    quantity: int
    order_id: UUID | None
    on_hand: int
    reserved: int


def products_available() -> QuerySet:
    """Every product as a dict of ``sku, name, price, currency, available``, by SKU; lazy, so it pages."""
    available = Coalesce(F("stock__on_hand") - F("stock__reserved"), Value(0), output_field=IntegerField())
    return (
        Product.objects.annotate(available=available)
        .order_by("sku")
        .values("sku", "name", "price", "currency", "available")
    )


def stock_level(*, sku: str) -> StockLevel | None:
    """The SKU's stock now, or None for an unknown SKU."""
    return stock_as_of(sku=sku, at=None)


def stock_as_of(*, sku: str, at: dt.datetime | None) -> StockLevel | None:
    """The SKU's stock as it was at ``at`` (timezone-aware), or now when None; None for an unknown SKU.

    A past state is the latest snapshot at or before ``at`` plus the fold of
    the stream's events after it that occurred by ``at``: a bounded read of
    at most ``INVENTORY_SNAPSHOT_EVERY`` events, however long the stream.
    Before the SKU's first event its stock is zero. The future is not known
    yet: a later ``at`` is answered as now, and ``as_of`` says so.
    """
    if at is not None and timezone.is_naive(at):
        raise ValueError("stock_as_of needs a timezone-aware time.")
    now = timezone.now()
    if at is None or at >= now:
        item = StockItem.objects.filter(sku=sku).first()
        if item is None:
            return None
        return StockLevel(sku=sku, on_hand=item.on_hand, reserved=item.reserved, as_of=now)
    if not StockItem.objects.filter(sku=sku).exists():
        return None
    state = _state_at_time(sku, at)
    return StockLevel(sku=sku, on_hand=state.on_hand, reserved=state.reserved, as_of=at)


def stock_replayed(
    *, sku: str, start: StockState | None = None, after: int = 0, before: int | None = None
) -> tuple[StockState, int]:
    """``start`` (a state at position ``after``; by default the empty stock at the stream's start) with the SKU's
    stream events ``after < position < before`` folded in, and the position of the last of them (``after`` when
    there is none).

    From the first event, ignoring snapshots, it is what the projection must
    equal; ``inventory_rebuild`` writes it back.
    """
    return _last(start or StockState(), after, stock_replay(sku=sku, start=start, after=after, before=before))


def stock_replay(
    *, sku: str, start: StockState | None = None, after: int = 0, before: int | None = None
) -> Iterator[tuple[OutboxEvent, StockEvent, StockState]]:
    """The SKU's stream events ``after < position < before``, in order: each row, its decoded event, and the stock
    right after it, folded from ``start`` (the state at position ``after``; by default the empty stock).

    The one fold over a SKU's stream: the projection's catch-up and rebuild,
    the history and the past states all read the stream through it. Served
    by the outbox's ``(aggregate_type, aggregate_id, id)`` index.
    """
    rows = _stream(sku).filter(id__gt=after)
    if before is not None:
        rows = rows.filter(id__lt=before)
    return _folded(start or StockState(), rows.order_by("id").iterator(chunk_size=1000))


def _folded(state: StockState, rows: Iterable[OutboxEvent]) -> Iterator[tuple[OutboxEvent, StockEvent, StockState]]:
    for row in rows:
        event = _decode(row)
        state = fold(state, event)
        yield row, event, state


def _last(
    state: StockState, position: int, steps: Iterable[tuple[OutboxEvent, StockEvent, StockState]]
) -> tuple[StockState, int]:
    """The state after the last step, and its position; ``state`` and ``position`` when there is no step."""
    for row, _, after_row in steps:
        state, position = after_row, row.id
    return state, position


def stock_history(*, sku: str, limit: int = 50) -> list[StockMovement]:
    """The SKU's latest ``limit`` stream events, newest first, each with the stock right after it."""
    positions = list(_stream(sku).order_by("-id").values_list("id", flat=True)[:limit])
    if not positions:
        return []
    first, last = positions[-1], positions[0]
    snapshot = StockSnapshot.objects.filter(sku=sku, position__lt=first).order_by("-position").first()
    replay = stock_replay(
        sku=sku,
        start=snapshot.state if snapshot else None,
        after=snapshot.position if snapshot else 0,
        before=last + 1,
    )
    return [
        StockMovement(
            position=row.id,
            occurred_at=row.occurred_at,
            type=row.type,
            quantity=event.quantity,
            order_id=getattr(event, "order_id", None),
            on_hand=state.on_hand,
            reserved=state.reserved,
        )
        for row, event, state in replay
        if row.id >= first
    ][::-1]


def _state_at_time(sku: str, at: dt.datetime) -> StockState:
    """The latest snapshot by ``at``, plus the events after it by ``at`` (none past the next snapshot).

    Within one stream ``occurred_at`` grows with the position: each SKU's
    events are appended one at a time under its row lock, so the next one is
    stamped after the previous one committed (on hosts whose clocks agree).
    """
    snapshots = StockSnapshot.objects.filter(sku=sku)
    start = snapshots.filter(occurred_at__lte=at).order_by("-occurred_at", "-position").first()
    after = start.position if start else 0
    following = snapshots.filter(position__gt=after, occurred_at__gt=at).order_by("position").first()
    events = _stream(sku).filter(id__gt=after, occurred_at__lte=at)
    if following is not None:
        events = events.filter(id__lt=following.position)  # bounds the index scan
    state = start.state if start else StockState()
    return _last(state, after, _folded(state, events.order_by("id")))[0]


def _stream(sku: str) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(aggregate_type=STOCK_STREAM, aggregate_id=sku).only(
        "id", "type", "version", "payload", "occurred_at"
    )


def _decode(row: OutboxEvent) -> StockEvent:
    event = registry.decode(row.type, row.version, row.payload)
    if not isinstance(event, StockEvent):
        raise TypeError(f"event #{row.id} in a stock stream is a {row.type}, not a stock event")
    return event
