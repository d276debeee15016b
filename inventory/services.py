"""The inventory context's use cases: the only code that changes the catalogue or stock.

Stock is event-sourced: every change to a SKU's stock appends one event to the
SKU's stream in the outbox log (:func:`_append`) and folds it into the
``StockItem`` projection in the same transaction, with a snapshot every
``INVENTORY_SNAPSHOT_EVERY`` events. That insert is the whole write cost of
the event store; the projection update is the one the row always had.

Locking: a service that changes stock locks the ``StockItem`` rows it touches
with ``SELECT ... FOR UPDATE`` in SKU order, so two reservations sharing SKUs
queue behind each other and never deadlock, and each SKU's events are
appended (and get their log positions) one at a time, in stream order. The
reservation row of the order is locked first, so the events of one
reservation are written in order.

Each append also states the stream version the projection was folded from
(``publish(..., expected_version=item.version)``): a writer that appended to
the SKU's stream without going through this module (another process, a
script) is caught there, not folded over. The service then catches the
projection up from the stream and runs again (:func:`_reloading_on_conflict`).
"""

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ParamSpec, TypeVar
from uuid import UUID

from django.conf import settings
from django.db import transaction

from outbox import ConcurrencyError
from outbox.publishing import publish

from .events import (
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    Shortage,
    StockEvent,
    StockLine,
    StockReceived,
    StockReservationReleased,
    StockReserved,
    StockShipped,
)
from .models import Product, Reservation, ReservationLine, StockItem, StockSnapshot
from .selectors import stock_replay, stock_replayed
from .stock import StockState, fold

Status = Reservation.Status
P = ParamSpec("P")
T = TypeVar("T")
CONFLICT_ATTEMPTS = 3  # runs of a service whose append met another writer's, before the conflict is raised


class UnknownSku(LookupError):
    """No product has this SKU."""


@dataclass(frozen=True)
class StockRebuilt:
    sku: str
    before: StockState
    after: StockState
    snapshots: int

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _reloading_on_conflict(service: Callable[P, T]) -> Callable[P, T]:
    """Run ``service`` again when an append met another writer's event, after folding that event in.

    The conflict rolled the service's transaction back (its ``atomic``, or
    savepoint inside a handler's transaction); the SKU's projection is caught
    up from its stream (:func:`_catch_up`) and the service reads it afresh.
    """

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return service(*args, **kwargs)
            except ConcurrencyError as conflict:
                if attempt == CONFLICT_ATTEMPTS or conflict.aggregate_type != StockEvent.aggregate_type:
                    raise
                _catch_up(conflict.aggregate_id)
        raise AssertionError("unreachable")

    return run


@_reloading_on_conflict
@transaction.atomic
def product_ensure(*, sku: str, name: str, price: Decimal, currency: str = "EUR", on_hand: int = 0) -> Product:
    """Create the product, its stock and its opening ``on_hand`` units unless the SKU exists.

    An existing product is left as it is. The opening units are received
    like any delivery (``StockReceived``), so every unit is in the log.
    """
    product, created = Product.objects.get_or_create(
        sku=sku, defaults={"name": name, "price": price, "currency": currency.upper()}
    )
    if created:
        item = StockItem.objects.create(product=product, sku=sku)  # new in this transaction: no one else sees it
        if on_hand:
            _append(item, StockReceived(sku=sku, quantity=on_hand))
    return product


@transaction.atomic
def product_reprice(*, sku: str, price: Decimal) -> Product:
    product = _product_for_update(sku)
    product.price = price
    product.save(update_fields=["price"])
    return product


@_reloading_on_conflict
@transaction.atomic
def stock_receive(*, sku: str, quantity: int) -> StockItem:
    """Goods arrived at the warehouse."""
    if quantity < 1:
        raise ValueError("A delivery has at least one unit.")
    item = _lock_stock([sku]).get(sku)
    if item is None:
        raise UnknownSku(f"No product has SKU {sku!r}.")
    _append(item, StockReceived(sku=sku, quantity=quantity))
    return item


@_reloading_on_conflict
@transaction.atomic
def stock_reserve(*, order_id: UUID, lines: Sequence[StockLine]) -> Reservation:
    """Reserve every line of the order, or none of them when any is short."""
    reservation, created = _reservation_for_update(order_id, if_new=Status.PENDING)
    if not created:
        return reservation  # decided already, or the order was cancelled before we got here
    wanted = _merge(lines)
    stock = _lock_stock(wanted)
    shortages = _shortages(wanted, stock)
    if shortages:
        return _fail(reservation, shortages)
    for sku, quantity in wanted.items():
        _append(stock[sku], StockReserved(sku=sku, order_id=order_id, quantity=quantity))
    ReservationLine.objects.bulk_create(
        ReservationLine(reservation=reservation, sku=sku, quantity=quantity) for sku, quantity in wanted.items()
    )
    reservation.mark_reserved()
    reservation.save(update_fields=["status", "updated_at"])
    publish(InventoryReserved(reservation_id=reservation.id, order_id=order_id, lines=_stock_lines(wanted)))
    return reservation


@_reloading_on_conflict
@transaction.atomic
def stock_release(*, order_id: UUID) -> Reservation:
    """Return the order's reserved stock. Before any reservation, make sure none will be made."""
    reservation, _ = _reservation_for_update(order_id, if_new=Status.CANCELLED)
    if reservation.status != Status.RESERVED:
        return reservation
    held = _held(reservation)
    stock = _lock_stock(held)
    for sku, quantity in held.items():
        _append(stock[sku], StockReservationReleased(sku=sku, order_id=order_id, quantity=quantity))
    reservation.mark_released()
    reservation.save(update_fields=["status", "updated_at"])
    publish(InventoryReleased(reservation_id=reservation.id, order_id=order_id, lines=_stock_lines(held)))
    return reservation


@_reloading_on_conflict
@transaction.atomic
def stock_ship_out(*, order_id: UUID) -> Reservation:
    """The order left the warehouse: its reserved units are no longer on hand."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        raise LookupError(f"Order {order_id} was shipped but inventory holds no reservation for it.")
    if reservation.status != Status.RESERVED:
        return reservation  # shipped already
    held = _held(reservation)
    stock = _lock_stock(held)
    for sku, quantity in held.items():
        _append(stock[sku], StockShipped(sku=sku, order_id=order_id, quantity=quantity))
    reservation.mark_shipped()
    reservation.save(update_fields=["status", "updated_at"])
    return reservation


@transaction.atomic
def stock_rebuild(*, sku: str) -> StockRebuilt:
    """Replay the SKU's stream from its first event into its ``StockItem`` and its snapshots.

    Locks the stock row, so no change to the SKU interleaves with the replay.
    The snapshots are recreated at every ``INVENTORY_SNAPSHOT_EVERY`` events.
    """
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise UnknownSku(f"No product has SKU {sku!r}.")
    StockItem.objects.get_or_create(product=product, defaults={"sku": sku})
    item = _lock_stock([sku])[sku]
    before, state, position, snapshots = item.state, StockState(), 0, []
    for row, _, state in stock_replay(sku=sku):
        position = row.id
        if _snapshot_due(state):
            snapshots.append(_snapshot(sku, state, position, row.occurred_at))
    StockSnapshot.objects.filter(sku=sku).delete()
    StockSnapshot.objects.bulk_create(snapshots)
    item.project(state, position=position)
    item.save(update_fields=["on_hand", "reserved", "version", "position", "updated_at"])
    return StockRebuilt(sku=sku, before=before, after=state, snapshots=len(snapshots))


def _append(item: StockItem, event: StockEvent) -> None:
    """Append ``event`` to the item's stream and fold it into the item: one insert, one update.

    Expects ``item`` locked (:func:`_lock_stock`), or created in this
    transaction, so that its stream grows one event at a time. The append
    expects the stream at the projection's version: ``ConcurrencyError`` if
    another writer's event is in it that the projection has not folded.
    """
    row = publish(event, expected_version=item.version)
    item.project(fold(item.state, event), position=row.id)
    item.save(update_fields=["on_hand", "reserved", "version", "position", "updated_at"])
    if _snapshot_due(item.state):
        _snapshot(item.sku, item.state, row.id, row.occurred_at).save()


@transaction.atomic
def _catch_up(sku: str) -> None:
    """Fold into the SKU's projection the events of its stream that it has not folded yet."""
    item = _lock_stock([sku])[sku]
    state, position = stock_replayed(sku=sku, start=item.state, after=item.position)
    item.project(state, position=position)
    item.save(update_fields=["on_hand", "reserved", "version", "position", "updated_at"])


def _snapshot_due(state: StockState) -> bool:
    return state.version % settings.INVENTORY_SNAPSHOT_EVERY == 0


def _snapshot(sku: str, state: StockState, position: int, occurred_at: dt.datetime) -> StockSnapshot:
    return StockSnapshot(
        sku=sku,
        position=position,
        version=state.version,
        occurred_at=occurred_at,
        on_hand=state.on_hand,
        reserved=state.reserved,
    )


def _product_for_update(sku: str) -> Product:
    try:
        return Product.objects.select_for_update().get(sku=sku)
    except Product.DoesNotExist:
        raise UnknownSku(f"No product has SKU {sku!r}.") from None


def _reservation_for_update(order_id: UUID, *, if_new: str) -> tuple[Reservation, bool]:
    """The order's reservation, locked; created with status ``if_new`` when there is none.

    A concurrent creator of the same order's row waits on the unique index
    and then finds ours, so exactly one reservation exists per order.
    """
    reservation, created = Reservation.objects.get_or_create(order_id=order_id, defaults={"status": if_new})
    if not created:
        reservation = Reservation.objects.select_for_update().get(pk=reservation.pk)
    return reservation, created


def _lock_stock(skus: Iterable[str]) -> dict[str, StockItem]:
    """Lock the stock rows of ``skus`` in SKU order (a consistent order: no deadlocks)."""
    rows = StockItem.objects.select_for_update().filter(sku__in=sorted(set(skus))).order_by("sku")
    return {item.sku: item for item in rows}


def _merge(lines: Sequence[StockLine]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    return dict(sorted(wanted.items()))


def _shortages(wanted: dict[str, int], stock: dict[str, StockItem]) -> list[Shortage]:
    shortages = []
    for sku, quantity in wanted.items():
        available = stock[sku].available if sku in stock else 0
        if available < quantity:
            shortages.append(Shortage(sku=sku, requested=quantity, available=max(available, 0)))
    return shortages


def _fail(reservation: Reservation, shortages: list[Shortage]) -> Reservation:
    reservation.mark_failed([s.model_dump() for s in shortages])
    reservation.save(update_fields=["status", "shortages", "updated_at"])
    publish(
        InventoryReservationFailed(
            reservation_id=reservation.id, order_id=reservation.order_id, shortages=tuple(shortages)
        )
    )
    return reservation


def _held(reservation: Reservation) -> dict[str, int]:
    return {line.sku: line.quantity for line in reservation.lines.all()}


def _stock_lines(quantities: dict[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=quantity) for sku, quantity in quantities.items())
