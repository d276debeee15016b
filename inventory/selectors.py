"""Read-side queries of the inventory context.

:func:`catalogue_prices`, :func:`product_list` and :func:`products_available`
are the context's published read API: other contexts (orders pricing a new
order, the shop's pages) call them and get plain immutable values, never a
model, so inventory's tables stay its own business.

Stock now is the ``StockItem`` projection. Stock at a past time is folded
from the SKU's stream in the outbox event log, starting at the latest
snapshot at or before that time (:func:`stock_as_of`).
"""

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from django.db.models import F, IntegerField, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from outbox.events import registry
from outbox.models import OutboxEvent

from .events import StockEvent
from .models import Product, Reservation, StockItem, StockSnapshot
from .stock import StockState, fold, fold_all

STOCK_STREAM = StockEvent.aggregate_type


@dataclass(frozen=True)
class CataloguePrice:
    sku: str
    name: str
    price: Decimal
    currency: str


@dataclass(frozen=True)
class ProductAvailability:
    sku: str
    name: str
    price: Decimal
    currency: str
    available: int


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


def catalogue_prices(*, skus: Iterable[str]) -> dict[str, CataloguePrice]:
    """The current price of each known SKU; unknown SKUs are simply absent."""
    products = Product.objects.filter(sku__in=set(skus))
    return {p.sku: CataloguePrice(sku=p.sku, name=p.name, price=p.price, currency=p.currency) for p in products}


def products_available() -> QuerySet:
    """Every product as a dict of ``sku, name, price, currency, available``, by SKU; lazy, so it pages."""
    available = Coalesce(F("stock__on_hand") - F("stock__reserved"), Value(0), output_field=IntegerField())
    return (
        Product.objects.annotate(available=available)
        .order_by("sku")
        .values("sku", "name", "price", "currency", "available")
    )


def product_list() -> list[ProductAvailability]:
    return [ProductAvailability(**row) for row in products_available()]


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


def stock_replayed(*, sku: str) -> tuple[StockState, int]:
    """The fold of the SKU's whole stream from its first event, ignoring snapshots, and its last position.

    What the projection must equal; ``inventory_rebuild`` writes it back.
    """
    state, position = StockState(), 0
    for row, event in stock_stream(sku=sku):
        state, position = fold(state, event), row.id
    return state, position


def stock_stream(*, sku: str, after: int = 0, before: int | None = None) -> Iterator[tuple[OutboxEvent, StockEvent]]:
    """The SKU's stream events with ``after < position < before``, in order, each with its decoded event.

    Served by the outbox's ``(aggregate_type, aggregate_id, id)`` index.
    """
    rows = _stream(sku).filter(id__gt=after)
    if before is not None:
        rows = rows.filter(id__lt=before)
    for row in rows.order_by("id").iterator(chunk_size=1000):
        yield row, _decode(row)


def stock_history(*, sku: str, limit: int = 50) -> list[StockMovement]:
    """The SKU's latest ``limit`` stream events, newest first, each with the stock right after it."""
    rows = list(_stream(sku).order_by("-id")[:limit])[::-1]
    if not rows:
        return []
    state = _state_before_position(sku, rows[0].id)
    movements = []
    for row in rows:
        event = _decode(row)
        state = fold(state, event)
        movements.append(
            StockMovement(
                position=row.id,
                occurred_at=row.occurred_at,
                type=row.type,
                quantity=event.quantity,
                order_id=getattr(event, "order_id", None),
                on_hand=state.on_hand,
                reserved=state.reserved,
            )
        )
    return movements[::-1]


def reservation_for_order(*, order_id: UUID) -> Reservation | None:
    return Reservation.objects.prefetch_related("lines").filter(order_id=order_id).first()


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
    return fold_all(start.state if start else StockState(), map(_decode, events.order_by("id")))


def _state_before_position(sku: str, position: int) -> StockState:
    start = StockSnapshot.objects.filter(sku=sku, position__lt=position).order_by("-position").first()
    events = stock_stream(sku=sku, after=start.position if start else 0, before=position)
    return fold_all(start.state if start else StockState(), (event for _, event in events))


def _stream(sku: str) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(aggregate_type=STOCK_STREAM, aggregate_id=sku).only(
        "id", "type", "version", "payload", "occurred_at"
    )


def _decode(row: OutboxEvent) -> StockEvent:
    return registry.decode(row.type, row.version, row.payload)
