"""The inventory context's use cases: the only code that changes the catalogue or stock.

Locking: a service that changes stock locks the ``StockItem`` rows it touches
with ``SELECT ... FOR UPDATE`` in SKU order, so two reservations sharing SKUs
queue behind each other and never deadlock; the reservation row of the order
is locked first, so the events of one reservation are written in order.
"""

from collections.abc import Iterable, Sequence
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.db.models import F

from outbox.publishing import publish

from .events import InventoryReleased, InventoryReservationFailed, InventoryReserved, Shortage, StockLine
from .models import Product, Reservation, ReservationLine, StockItem

Status = Reservation.Status


class UnknownSku(LookupError):
    """No product has this SKU."""


@transaction.atomic
def product_ensure(*, sku: str, name: str, price: Decimal, currency: str = "EUR", on_hand: int = 0) -> Product:
    """Create the product and its stock unless the SKU exists; an existing one is left as it is."""
    product, created = Product.objects.get_or_create(
        sku=sku, defaults={"name": name, "price": price, "currency": currency.upper()}
    )
    if created:
        StockItem.objects.create(product=product, sku=sku, on_hand=on_hand)
    return product


@transaction.atomic
def product_reprice(*, sku: str, price: Decimal) -> Product:
    product = _product_for_update(sku)
    product.price = price
    product.save(update_fields=["price"])
    return product


@transaction.atomic
def stock_receive(*, sku: str, quantity: int) -> StockItem:
    """Goods arrived at the warehouse."""
    if quantity < 1:
        raise ValueError("A delivery has at least one unit.")
    item = _lock_stock([sku]).get(sku)
    if item is None:
        raise UnknownSku(f"No product has SKU {sku!r}.")
    StockItem.objects.filter(pk=item.pk).update(on_hand=F("on_hand") + quantity)
    item.refresh_from_db()
    return item


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
        StockItem.objects.filter(pk=stock[sku].pk).update(reserved=F("reserved") + quantity)
    ReservationLine.objects.bulk_create(
        ReservationLine(reservation=reservation, sku=sku, quantity=quantity) for sku, quantity in wanted.items()
    )
    reservation.mark_reserved()
    reservation.save(update_fields=["status", "updated_at"])
    publish(InventoryReserved(reservation_id=reservation.id, order_id=order_id, lines=_stock_lines(wanted)))
    return reservation


@transaction.atomic
def stock_release(*, order_id: UUID) -> Reservation:
    """Return the order's reserved stock. Before any reservation, make sure none will be made."""
    reservation, _ = _reservation_for_update(order_id, if_new=Status.CANCELLED)
    if reservation.status != Status.RESERVED:
        return reservation
    held = _held(reservation)
    stock = _lock_stock(held)
    for sku, quantity in held.items():
        StockItem.objects.filter(pk=stock[sku].pk).update(reserved=F("reserved") - quantity)
    reservation.mark_released()
    reservation.save(update_fields=["status", "updated_at"])
    publish(InventoryReleased(reservation_id=reservation.id, order_id=order_id, lines=_stock_lines(held)))
    return reservation


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
        StockItem.objects.filter(pk=stock[sku].pk).update(
            on_hand=F("on_hand") - quantity, reserved=F("reserved") - quantity
        )
    reservation.mark_shipped()
    reservation.save(update_fields=["status", "updated_at"])
    return reservation


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
